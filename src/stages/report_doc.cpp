// The report's two renderings (HTML, Markdown) and the terminal table.
#include <algorithm>

#include <fmt/format.h>

#include "stages/report_parts.h"

namespace recap::stages::report {

namespace {

// Inline, so the page needs nothing beside it; pixelated keeps 32 px renders sharp when enlarged.
constexpr const char* kStyle = R"(body{font-family:sans-serif;margin:2em;max-width:90em}
table{border-collapse:collapse;margin:0.5em 0 1.5em}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f2f2f2}
td img{width:96px;image-rendering:pixelated}
img{max-width:100%})";

// A Markdown table cell holds one line and no unescaped '|'.
std::string md_cell(const Cell& cell) {
  if (!cell.image.empty()) return fmt::format("![{}]({})", cell.text, cell.image);
  std::string out;
  for (char c : cell.text) {
    if (c == '|')
      out += "\\|";
    else
      out += c == '\n' ? ' ' : c;
  }
  return out;
}

std::string html_cell(const Cell& cell) {
  if (!cell.image.empty())
    return fmt::format("<img src=\"{}\" alt=\"{}\">", escape_html(cell.image),
                       escape_html(cell.text));
  return escape_html(cell.text);
}

}  // namespace

std::string escape_html(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

void Doc::heading(int level, const std::string& text) {
  html_ += fmt::format("<h{0}>{1}</h{0}>\n", level, escape_html(text));
  md_ += fmt::format("{} {}\n\n", std::string(static_cast<size_t>(level), '#'), text);
}

void Doc::para(const std::string& text) {
  html_ += fmt::format("<p>{}</p>\n", escape_html(text));
  md_ += text + "\n\n";
}

void Doc::table(const Table& table) {
  html_ += "<table>\n<tr>";
  for (const auto& h : table.header) html_ += fmt::format("<th>{}</th>", escape_html(h));
  html_ += "</tr>\n";
  for (const auto& row : table.rows) {
    html_ += "<tr>";
    for (const auto& cell : row) html_ += fmt::format("<td>{}</td>", html_cell(cell));
    html_ += "</tr>\n";
  }
  html_ += "</table>\n";

  md_ += "|";
  for (const auto& h : table.header) md_ += " " + md_cell(Cell(h)) + " |";
  md_ += "\n|";
  for (size_t i = 0; i < table.header.size(); ++i) md_ += " --- |";
  md_ += "\n";
  for (const auto& row : table.rows) {
    md_ += "|";
    for (const auto& cell : row) md_ += " " + md_cell(cell) + " |";
    md_ += "\n";
  }
  md_ += "\n";
}

void Doc::image(const std::string& path, const std::string& alt) {
  html_ += fmt::format("<p><img src=\"{}\" alt=\"{}\"></p>\n", escape_html(path), escape_html(alt));
  md_ += fmt::format("![{}]({})\n\n", alt, path);
}

std::string Doc::html(const std::string& title) const {
  return fmt::format(
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n"
      "<style>\n{}\n</style>\n</head>\n<body>\n{}</body>\n</html>\n",
      escape_html(title), kStyle, html_);
}

std::string plain_table(const Table& table) {
  std::vector<std::vector<std::string>> lines = {table.header};
  for (const auto& row : table.rows) {
    std::vector<std::string> line;
    for (const auto& cell : row) line.push_back(cell.text);
    lines.push_back(std::move(line));
  }
  std::vector<size_t> width;
  for (const auto& line : lines)
    for (size_t c = 0; c < line.size(); ++c) {
      if (width.size() <= c) width.push_back(0);
      width[c] = std::max(width[c], line[c].size());
    }
  std::string out;
  for (const auto& line : lines) {
    for (size_t c = 0; c < line.size(); ++c)
      out += c == 0 ? fmt::format("{:<{}}", line[c], width[c])
                    : fmt::format("  {:>{}}", line[c], width[c]);
    out += '\n';
  }
  return out;
}

}  // namespace recap::stages::report
