#pragma once
/// \file
/// The one exception type Kiln throws across its public API.

#include <stdexcept>
#include <string>

namespace kiln {

/// Every failure Kiln reports to its host — a malformed model file, a corrupt weights file, an input of
/// the wrong shape, an out-of-range token id — is a `kiln::Error`. The message is one line in the form
/// `FILE:LINE:COL: error: WHAT` when a source location is known, else `error: WHAT`. Kiln never aborts
/// the host process on bad input.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace kiln
