// Reads CSV records (RFC 4180: comma-separated, fields optionally in double quotes, "" for a
// quote inside one, newlines allowed inside quotes; CRLF or LF line ends) one at a time from a
// stream, so a manifest of a billion rows is never held whole. A malformed record (a quote
// inside an unquoted field, text after a closing quote, the end of the file inside quotes, a
// record longer than its limit) is reported and skipped to the end of its line, and reading
// goes on with the next one.
#pragma once
#include <cstdint>
#include <istream>
#include <string>
#include <vector>

namespace recap::data {

struct CsvRecord {
  enum class Status { kFields, kMalformed, kEnd } status = Status::kEnd;
  std::vector<std::string> fields;  // kFields: the record's fields, unquoted
  std::string problem;              // kMalformed: what is wrong with it
  uint64_t lines = 0;               // line ends consumed (a quoted newline counts too)
};

// The next record of `in`; kEnd when the stream has no more characters. A blank line is a
// record of one empty field. Fields of more than `max_bytes` in total make it kMalformed.
CsvRecord read_csv_record(std::istream& in, uint64_t max_bytes);

}  // namespace recap::data
