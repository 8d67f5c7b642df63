#include "data/csv.h"

namespace recap::data {

namespace {

constexpr int kEof = std::char_traits<char>::eof();

// Consumes the rest of the physical line, its '\n' included.
void skip_line(std::istream& in, CsvRecord& record) {
  for (int c = in.get(); c != kEof; c = in.get())
    if (c == '\n') {
      ++record.lines;
      return;
    }
}

CsvRecord malformed(std::istream& in, CsvRecord record, std::string problem, bool skip) {
  if (skip) skip_line(in, record);
  record.status = CsvRecord::Status::kMalformed;
  record.problem = std::move(problem);
  record.fields.clear();
  return record;
}

}  // namespace

CsvRecord read_csv_record(std::istream& in, uint64_t max_bytes) {
  CsvRecord record;
  if (in.peek() == kEof) return record;
  record.status = CsvRecord::Status::kFields;
  record.fields.emplace_back();
  uint64_t bytes = 0;
  bool quoted = false;        // inside a quoted field
  bool after_quote = false;   // a quoted field closed; only a separator may follow
  bool field_started = false;  // the current field has a character (or opened a quote)
  for (int c = in.get();; c = in.get()) {
    if (c == kEof) {
      if (quoted)
        return malformed(in, std::move(record), "the file ends inside a quoted field", false);
      return record;
    }
    if (++bytes > max_bytes) {
      const bool line_ended = c == '\n' && !quoted;  // nothing of the line left to skip
      if (line_ended) ++record.lines;
      return malformed(in, std::move(record),
                       "record longer than " + std::to_string(max_bytes) + " bytes", !line_ended);
    }
    std::string& field = record.fields.back();
    if (quoted) {
      if (c == '"') {
        if (in.peek() == '"') {
          in.get();
          field.push_back('"');
        } else {
          quoted = false;
          after_quote = true;
        }
      } else {
        if (c == '\n') ++record.lines;
        field.push_back(static_cast<char>(c));
      }
    } else if (c == ',') {
      record.fields.emplace_back();
      after_quote = field_started = false;
      continue;
    } else if (c == '\n' || (c == '\r' && in.peek() == '\n')) {
      if (c == '\r') in.get();
      ++record.lines;
      return record;
    } else if (after_quote) {
      return malformed(in, std::move(record), "text after a closing quote", true);
    } else if (c == '"') {
      if (field_started)
        return malformed(in, std::move(record), "a quote inside an unquoted field", true);
      quoted = true;
    } else {
      field.push_back(static_cast<char>(c));
    }
    field_started = true;
  }
}

}  // namespace recap::data
