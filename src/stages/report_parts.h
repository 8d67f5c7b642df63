// Internals of stages/report shared by its translation units (report.cpp assembles the
// document; report_media.cpp draws grids and runs gnuplot; report_examples.cpp gathers the
// caption examples). Torch-free.
#pragma once
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "stages/report.h"

namespace recap::stages::report {

inline constexpr const char* kNotRun = "not run";

// A table cell: text, or an image (a path relative to report/) with its alt text.
struct Cell {
  std::string text;
  std::string image;
  Cell(std::string t = {}) : text(std::move(t)) {}  // NOLINT: cells are mostly text
  Cell(const char* t) : text(t) {}                  // NOLINT
  static Cell picture(std::string path, std::string alt) {
    Cell c(std::move(alt));
    c.image = std::move(path);
    return c;
  }
};

struct Table {
  std::vector<std::string> header;
  std::vector<std::vector<Cell>> rows;
};

// The report in HTML and Markdown at once: each call appends the same content to both.
class Doc {
 public:
  void heading(int level, const std::string& text);
  void para(const std::string& text);
  void table(const Table& table);
  void image(const std::string& path, const std::string& alt);  // path relative to report/
  std::string html(const std::string& title) const;
  const std::string& markdown() const { return md_; }

 private:
  std::string html_, md_;
};

// Columns padded to their widest cell; images show their alt text.
std::string plain_table(const Table& table);

// One arm's column in a suite's grid: its image file for each prompt text it sampled.
struct GridColumn {
  std::string arm;
  std::map<std::string, fs::path> files;  // prompt -> PNG; a prompt it lacks shows "not run"
};
// Draws the grid (geometry in report.h) to `out`, atomically. Throws recap::Error naming an
// image file that cannot be read or decoded.
void write_grid(const std::vector<std::string>& prompts, const std::vector<GridColumn>& columns,
                const fs::path& out);

// A line on a plot: (x, y) points in order.
struct Series {
  std::string title;
  std::vector<std::pair<double, double>> points;
};
struct Panel {
  std::string title, xlabel, ylabel;
  std::vector<Series> series;
};
// Renders the panels side by side into `out` (PNG, gnuplot's pngcairo). Returns "" when the
// plot was written, otherwise why it was skipped (gnuplot missing or failing), for the report.
std::string plot(const std::vector<Panel>& panels, const fs::path& out);

// The caption examples table: the first `count` web samples of layout.corpus(), their images
// copied to report/examples/KEY.png, beside every caption source the run has. Empty when the
// corpus has not been made.
Table caption_examples(const RunLayout& layout, int count);

// HTML-escaped text.
std::string escape_html(const std::string& text);

}  // namespace recap::stages::report
