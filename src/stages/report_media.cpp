// The report's pictures: per-suite image grids drawn with Cairo, training curves by gnuplot.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "data/image.h"
#include "stages/report_parts.h"
#include "stages/sheet_draw.h"

extern char** environ;

namespace recap::stages::report {

namespace {

// The prompt wrapped into the label column, cut to the lines that fit beside one cell.
std::vector<std::string> label_lines(cairo_t* cr, const std::string& prompt) {
  auto lines = draw::wrap(cr, prompt, kGridLabelPx);
  const size_t fit = static_cast<size_t>(kGridCellPx / draw::kLineHeight);
  if (lines.size() > fit) {
    lines.resize(fit);
    lines.back() += " ...";
  }
  return lines;
}

void show_text(cairo_t* cr, double x, double y, const std::string& text) {
  cairo_move_to(cr, x, y);
  cairo_show_text(cr, text.c_str());
}

}  // namespace

void write_grid(const std::vector<std::string>& prompts, const std::vector<GridColumn>& columns,
                const fs::path& out) {
  constexpr int m = kGridMarginPx, cell = kGridCellPx;
  const int arms = static_cast<int>(columns.size());
  const int rows = static_cast<int>(prompts.size());
  draw::Surface sheet = draw::image_surface(2 * m + kGridLabelPx + arms * (m + cell),
                                            2 * m + kGridHeaderPx + rows * (m + cell));
  draw::Context cr = draw::context(sheet.get());
  cairo_t* c = cr.get();
  cairo_set_source_rgb(c, 1, 1, 1);
  cairo_paint(c);
  const auto cell_x = [&](int a) { return m + kGridLabelPx + m + a * (m + cell); };
  const auto row_y = [&](int r) { return m + kGridHeaderPx + m + r * (m + cell); };

  cairo_set_source_rgb(c, 0, 0, 0);
  draw::set_font(c, true);
  for (int a = 0; a < arms; ++a) {
    // Clipped to its own cell, so a long arm name cannot run into the next column.
    cairo_save(c);
    cairo_rectangle(c, cell_x(a), 0, cell, m + kGridHeaderPx);
    cairo_clip(c);
    show_text(c, cell_x(a), m + draw::kBaseline, columns[a].arm);
    cairo_restore(c);
  }
  for (int r = 0; r < rows; ++r) {
    cairo_set_source_rgb(c, 0, 0, 0);
    draw::set_font(c, false);
    const auto lines = label_lines(c, prompts[r]);
    for (size_t i = 0; i < lines.size(); ++i)
      show_text(c, m, row_y(r) + draw::kBaseline + draw::kLineHeight * static_cast<double>(i),
                lines[i]);
    for (int a = 0; a < arms; ++a) {
      auto it = columns[a].files.find(prompts[r]);
      if (it == columns[a].files.end()) {
        cairo_set_source_rgb(c, 0.9, 0.9, 0.9);
        cairo_rectangle(c, cell_x(a), row_y(r), cell, cell);
        cairo_fill(c);
        cairo_set_source_rgb(c, 0.4, 0.4, 0.4);
        show_text(c, cell_x(a) + 4, row_y(r) + cell / 2.0, kNotRun);
        continue;
      }
      data::DecodeResult decoded = data::decode_image(read_file(it->second));
      if (!decoded.image)
        throw Error(fmt::format("{}: image cannot be shown ({}: {})", it->second.string(),
                                decoded.reason, decoded.detail));
      draw::draw_image(c, *decoded.image, cell_x(a), row_y(r), cell);
    }
  }
  write_file_atomic(out, draw::encode_png(sheet.get(), out));
}

namespace {

// A gnuplot single-quoted string: a quote inside is written twice.
std::string gp_quote(const std::string& text) {
  std::string out = "'";
  for (char ch : text) out += ch == '\'' ? std::string("''") : std::string(1, ch);
  return out + "'";
}

// Runs `gnuplot script` with its output going to `log`. Returns "" on success, else the reason.
std::string run_gnuplot(const fs::path& script, const fs::path& log) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  std::string arg0 = "gnuplot", arg1 = script.string();
  char* argv[] = {arg0.data(), arg1.data(), nullptr};
  pid_t pid = 0;
  const int err = posix_spawnp(&pid, "gnuplot", &actions, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  if (err == ENOENT) return "gnuplot is not installed (not found on PATH)";
  if (err != 0) return fmt::format("gnuplot could not be started ({})", std::strerror(err));
  int status = 0;
  if (::waitpid(pid, &status, 0) < 0) return "gnuplot: waitpid failed";
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return "";
  std::string output;
  try {
    output = read_file(log);
  } catch (const Error&) {
  }
  return fmt::format("gnuplot failed (status {}): {}", status, output.substr(0, 400));
}

}  // namespace

std::string plot(const std::vector<Panel>& panels, const fs::path& out) {
  // Data, script and log go to a scratch folder beside the output, removed afterwards.
  const fs::path work = out.parent_path() / (".plot-" + out.stem().string());
  std::error_code ec;
  fs::remove_all(work, ec);
  if (!ec) fs::create_directories(work, ec);
  if (ec) throw Error(work.string() + ": cannot create the folder: " + ec.message());
  // Gone however this ends (a full disk throws from any write below).
  struct RemoveWork {
    const fs::path& work;
    ~RemoveWork() {
      std::error_code ignored;
      fs::remove_all(work, ignored);
    }
  } remove_work{work};
  const fs::path tmp = work / "plot.png";
  std::string script = fmt::format(
      "set terminal pngcairo size {},{} font 'DejaVu Sans,10' noenhanced\nset output {}\n"
      "set grid\nset key top right\nset multiplot layout 1,{}\n",
      480 * panels.size(), 360, gp_quote(tmp.string()), panels.size());
  int file_index = 0;
  for (const auto& panel : panels) {
    script += fmt::format("set title {}\nset xlabel {}\nset ylabel {}\nplot ",
                          gp_quote(panel.title), gp_quote(panel.xlabel), gp_quote(panel.ylabel));
    for (size_t s = 0; s < panel.series.size(); ++s) {
      const fs::path data = work / fmt::format("{}.dat", file_index++);
      std::string rows;
      for (const auto& [x, y] : panel.series[s].points) rows += fmt::format("{} {}\n", x, y);
      write_file_atomic(data, rows);
      // Points mark the few measurements of a sparse series (checkpoints); dense ones are lines.
      script += fmt::format(
          "{}{} using 1:2 with {} lw 2 title {}", s ? ", " : "", gp_quote(data.string()),
          panel.series[s].points.size() <= 50 ? "linespoints pt 7 ps 0.6" : "lines",
          gp_quote(panel.series[s].title));
    }
    script += "\n";
  }
  script += "unset multiplot\nset output\n";
  write_file_atomic(work / "plot.gp", script);
  std::string skipped = run_gnuplot(work / "plot.gp", work / "gnuplot.log");
  if (skipped.empty()) {
    // gnuplot exits 0 even when its output could not be written whole (a full disk): the
    // picture must decode before it is published, and it goes to its place as every file
    // does (temporary, fsync, rename), where a failing write is an error naming `out`.
    std::string png;
    try {
      png = read_file(tmp);
    } catch (const Error& e) {
      skipped = std::string("gnuplot wrote no picture: ") + e.what();
    }
    if (skipped.empty() && !data::decode_image(png).image)
      skipped = fmt::format("gnuplot's picture {} is not a whole PNG ({} bytes; a full disk?)",
                            tmp.string(), png.size());
    if (skipped.empty()) write_file_atomic(out, png);
  }
  return skipped;
}

}  // namespace recap::stages::report
