// The safetensors header is strict JSON (RFC 8259), read with nlohmann-json. Until issue 14 it was read
// with yaml-cpp, which also took YAML: unquoted keys, single quotes, comments, trailing content. Such a
// header is refused with the file, the position in the header and what the parser expected there.

#include <cstdint>
#include <string>

#include "frontends/safetensors.hpp"
#include "test_util.hpp"

using kiln::test::contains;
using kiln::test::error_of;

namespace {

// A safetensors image: 8-byte little-endian header length, the header, the data.
std::string image(const std::string& header, const std::string& data = std::string(4, '\0')) {
  std::string out;
  for (int i = 0; i < 8; ++i) out += static_cast<char>((header.size() >> (8 * i)) & 0xff);
  return out + header + data;
}

std::string header_error(const std::string& header) {
  const std::string bytes = image(header);
  return error_of([&] { kiln::WeightsFile::from_memory("w.safetensors", bytes.data(), bytes.size(), nullptr); });
}

std::size_t tensors_in(const std::string& header) {
  const std::string bytes = image(header);
  return kiln::WeightsFile::from_memory("w.safetensors", bytes.data(), bytes.size(), nullptr)->tensors().size();
}

const std::string kTensor = R"({"dtype": "F32", "shape": [1], "data_offsets": [0, 4]})";

}  // namespace

TEST_CASE("safetensors json: strict JSON with surrounding whitespace loads") {
  CHECK(tensors_in(R"({"a": )" + kTensor + "}") == 1);
  // Writers pad the header with spaces so the data is aligned; any JSON whitespace may follow the object.
  CHECK(tensors_in(R"({"a": )" + kTensor + "}  \n\t\r\n ") == 1);
  CHECK(tensors_in("\n{\n  \"a\": " + kTensor + "\n}\n") == 1);
  CHECK(tensors_in(R"({"__metadata__": {"format": "pt"}})") == 0);
}

TEST_CASE("safetensors json: YAML that is not JSON is refused with its position") {
  // YAML flow syntax: unquoted keys.
  CHECK(header_error("{a: {dtype: F32, shape: [1], data_offsets: [0, 4]}}") ==
        "w.safetensors: error: header is not valid JSON (line 1, column 2, file offset 9): syntax error while "
        "parsing object key - invalid literal; last read: '{a'; expected string literal");
  // Unquoted string values.
  CHECK(header_error(R"({"a": {"dtype": F32, "shape": [1], "data_offsets": [0, 4]}})") ==
        "w.safetensors: error: header is not valid JSON (line 1, column 17, file offset 24): syntax error while "
        "parsing value - invalid literal; last read: '\"dtype\": F'");
  // Single quotes.
  CHECK(header_error("{'a': " + kTensor + "}") ==
        "w.safetensors: error: header is not valid JSON (line 1, column 2, file offset 9): syntax error while "
        "parsing object key - invalid literal; last read: '{''; expected string literal");
  // A comment, on the second line.
  CHECK(header_error("{\n  # weights\n  \"a\": " + kTensor + "}") ==
        "w.safetensors: error: header is not valid JSON (line 2, column 3, file offset 12): syntax error while "
        "parsing object key - invalid literal; last read: '{<U+000A>  #'; expected string literal");
  // A trailing comma.
  CHECK(header_error(R"({"a": )" + kTensor + ",}") ==
        "w.safetensors: error: header is not valid JSON (line 1, column 62, file offset 69): syntax error while "
        "parsing object key - unexpected '}'; expected string literal");
}

TEST_CASE("safetensors json: content after the object is refused") {
  const std::string ok = R"({"a": )" + kTensor + "}";
  CHECK(header_error(ok + " xyz") == "w.safetensors: error: header is not valid JSON (line 1, column 63, file offset 70): "
                                     "syntax error while parsing value - invalid literal; last read: '4]}} x'; "
                                     "expected end of input");
  CHECK(header_error(ok + "\n\n}") == "w.safetensors: error: header is not valid JSON (line 3, column 1, file offset 71): "
                                      "syntax error while parsing value - unexpected '}'; expected end of input");
  // A second object (two headers glued together).
  CHECK(header_error(ok + ok) == "w.safetensors: error: header is not valid JSON (line 1, column 62, file offset 69): "
                                 "syntax error while parsing value - unexpected '{'; expected end of input");
}

TEST_CASE("safetensors json: a header that ends early names the end") {
  // The position is just past the last byte (the header is 63 bytes): line 4, column 1, after three lines.
  CHECK(header_error("{\"a\": {\"dtype\": \"F32\",\n \"shape\": [1],\n \"data_offsets\": [0, 4]}\n") ==
        "w.safetensors: error: header is not valid JSON (line 4, column 1, file offset 71): syntax error while "
        "parsing object - unexpected end of input; expected '}'");
}

TEST_CASE("safetensors json: duplicate keys are refused") {
  // Readers disagree on duplicates (yaml-cpp kept the first, nlohmann and Python's json keep the last), so
  // such a header could load different weights in Kiln than in PyTorch: it is refused, not resolved.
  CHECK(header_error(R"({"a": )" + kTensor + R"(, "a": )" + kTensor + "}") ==
        "w.safetensors: error: header names tensor 'a' twice (each tensor must appear once)");
  CHECK(header_error(R"({"a": {"dtype": "F32", "dtype": "F16", "shape": [1], "data_offsets": [0, 4]}})") ==
        "w.safetensors: error: tensor 'a': key \"dtype\" appears twice (each key must appear once)");
  CHECK(header_error(R"({"__metadata__": {"format": "pt", "format": "np"}})") ==
        "w.safetensors: error: \"__metadata__\": key \"format\" appears twice (each key must appear once)");
  // The same names in different objects are no duplicates.
  CHECK(tensors_in(R"({"__metadata__": {"a": "x"}, "a": )" + kTensor + "}") == 1);
}

TEST_CASE("safetensors json: a top level that is not an object is refused") {
  for (const char* header : {"[1, 2, 3]", "42", "null", "true", R"("weights")", "[]"})
    CHECK(header_error(header) == "w.safetensors: error: header is not a JSON object");
  // Duplicates inside a non-object top level are still refused, by key.
  CHECK(header_error(R"([{"a": 1, "a": 2}])") ==
        "w.safetensors: error: header has the key \"a\" twice in one object (each key must appear once)");
}

TEST_CASE("safetensors json: values YAML would have converted are refused") {
  // yaml-cpp read "1" and "0" as integers; JSON strings are not numbers.
  CHECK(header_error(R"({"a": {"dtype": "F32", "shape": ["1"], "data_offsets": [0, 4]}})") ==
        "w.safetensors: error: tensor 'a': \"shape\" must hold non-negative integers, got \"1\"");
  CHECK(header_error(R"({"a": {"dtype": "F32", "shape": [true], "data_offsets": [0, 4]}})") ==
        "w.safetensors: error: tensor 'a': \"shape\" must hold non-negative integers, got true");
  CHECK(header_error(R"({"a": {"dtype": "F32", "shape": [[1]], "data_offsets": [0, 4]}})") ==
        "w.safetensors: error: tensor 'a': \"shape\" must hold non-negative integers, got a list");
  for (const char* offsets : {R"(["0", "4"])", "[0, 4.0]", "[0, -4]", "[0, null]", "{}"})
    CHECK(header_error(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": )" + std::string(offsets) + "}}") ==
          "w.safetensors: error: tensor 'a': \"data_offsets\" must be [begin, end] byte offsets");
  CHECK(header_error(R"({"a": {"dtype": 32, "shape": [1], "data_offsets": [0, 4]}})") ==
        "w.safetensors: error: tensor 'a': \"dtype\" must be a string");
}

TEST_CASE("safetensors json: numbers out of range are refused, not wrapped") {
  CHECK(header_error(R"({"a": {"dtype": "F32", "shape": [1e999], "data_offsets": [0, 4]}})") ==
        "w.safetensors: error: header is not valid JSON (line 1, column 38, file offset 45): number overflow parsing "
        "'1e999'");
  CHECK(header_error(R"({"a": {"dtype": "F32", "shape": [18446744073709551615], "data_offsets": [0, 4]}})") ==
        "w.safetensors: error: tensor 'a': \"shape\" dim 18446744073709551615 is too large (at most "
        "9223372036854775807)");
  // Beyond 2^64 nlohmann reads an integer as a double: not an integer any more.
  CHECK(header_error(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 18446744073709551616]}})") ==
        "w.safetensors: error: tensor 'a': \"data_offsets\" must be [begin, end] byte offsets");
}

TEST_CASE("safetensors json: malformed strings and deep nesting fail cleanly") {
  CHECK(contains(header_error("{\"a\": \"\xff\"}"),
                 "w.safetensors: error: header is not valid JSON (line 1, column 8, file offset 15): syntax error while "
                 "parsing value - invalid string: ill-formed UTF-8 byte"));
  // 200000 levels: the parser and the JSON value's destructor are iterative, so no stack overflow.
  CHECK(header_error(std::string(200000, '[')) ==
        "w.safetensors: error: header is not valid JSON (line 1, column 200001, file offset 200008): syntax error "
        "while parsing value - unexpected end of input; expected '[', '{', or a literal");
  CHECK(header_error(std::string(200000, '[') + std::string(200000, ']')) ==
        "w.safetensors: error: header is not a JSON object");
}
