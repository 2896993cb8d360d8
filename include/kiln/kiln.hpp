#pragma once
/// \file
/// Kiln's public C++ API: include this one header.
#include "kiln/error.hpp"
#include "kiln/generate.hpp"
#include "kiln/model.hpp"
#include "kiln/tensor.hpp"
