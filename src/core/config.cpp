#include "core/config.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include <fmt/format.h>
#include <toml++/toml.h>

#include "core/atomic_file.h"
#include "core/error.h"

namespace recap {

// Preset texts compiled into the binary from configs/*.toml (generated at configure time),
// so `recap --preset quick` works from any directory.
extern const std::vector<std::pair<std::string, std::string>>& embedded_presets();

namespace {

const ConfigKey* find_key(std::string_view key) {
  for (const auto& spec : config_schema())
    if (spec.key == key) return &spec;
  return nullptr;
}

std::string type_name(ConfigType t) {
  switch (t) {
    case ConfigType::Int:
      return "an integer";
    case ConfigType::Float:
      return "a number";
    case ConfigType::Bool:
      return "a boolean";
    case ConfigType::String:
      return "a string";
    case ConfigType::StringList:
      return "a list of strings";
    case ConfigType::IntList:
      return "a list of integers";
  }
  return "?";
}

std::string node_type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::integer:
      return "integer";
    case toml::node_type::floating_point:
      return "float";
    case toml::node_type::boolean:
      return "boolean";
    case toml::node_type::string:
      return "string";
    case toml::node_type::array:
      return "array";
    case toml::node_type::table:
      return "table";
    default:
      return "date/time";
  }
}

std::string unknown_key_message(const std::string& source, std::string_view key) {
  // Suggest keys from the same section: the usual cause is a typo.
  std::string section(key.substr(0, key.find('.')));
  std::vector<std::string> near;
  for (const auto& spec : config_schema())
    if (spec.key.rfind(section + ".", 0) == 0) near.push_back(spec.key);
  std::string msg = fmt::format("{}: unknown key '{}'", source, key);
  if (!near.empty()) msg += fmt::format(" (keys in [{}]: {})", section, fmt::join(near, ", "));
  return msg;
}

template <typename T>
std::vector<T> convert_list(const ConfigKey& spec, const toml::node& node,
                            const std::string& source) {
  const toml::array* arr = node.as_array();
  if (!arr)
    throw Error(fmt::format("{}: key '{}': expected {}, got {}", source, spec.key,
                            type_name(spec.type), node_type_name(node)));
  std::vector<T> out;
  for (const auto& item : *arr) {
    auto v = item.value_exact<T>();
    if (!v)
      throw Error(fmt::format("{}: key '{}': expected {}, found a {} element", source, spec.key,
                              type_name(spec.type), node_type_name(item)));
    out.push_back(*v);
  }
  return out;
}

ConfigValue convert(const ConfigKey& spec, const toml::node& node, const std::string& source) {
  auto wrong = [&] {
    return Error(fmt::format("{}: key '{}': expected {}, got {}", source, spec.key,
                             type_name(spec.type), node_type_name(node)));
  };
  switch (spec.type) {
    case ConfigType::Int:
      if (auto v = node.value_exact<int64_t>()) return *v;
      throw wrong();
    case ConfigType::Float:
      if (node.is_floating_point()) return *node.value_exact<double>();
      if (auto v = node.value_exact<int64_t>()) return static_cast<double>(*v);
      throw wrong();
    case ConfigType::Bool:
      if (auto v = node.value_exact<bool>()) return *v;
      throw wrong();
    case ConfigType::String:
      if (auto v = node.value_exact<std::string>()) return *v;
      throw wrong();
    case ConfigType::StringList:
      return convert_list<std::string>(spec, node, source);
    case ConfigType::IntList:
      return convert_list<int64_t>(spec, node, source);
  }
  throw wrong();
}

std::string value_to_toml(const ConfigValue& v) {
  return std::visit(
      [](const auto& x) -> std::string {
        using T = std::decay_t<decltype(x)>;
        std::ostringstream out;
        if constexpr (std::is_same_v<T, std::vector<std::string>> ||
                      std::is_same_v<T, std::vector<int64_t>>) {
          toml::array arr;
          for (const auto& item : x) arr.push_back(item);
          out << arr;
        } else if constexpr (std::is_same_v<T, double>) {
          // Always a float literal, so the type survives a round trip.
          std::string s = fmt::format("{}", x);
          if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
          out << s;
        } else {
          out << toml::value<T>(x);
        }
        return out.str();
      },
      v);
}

nlohmann::json value_to_json(const ConfigValue& v) {
  return std::visit([](const auto& x) { return nlohmann::json(x); }, v);
}

}  // namespace

std::string describe_config_schema() {
  constexpr const char* kTypes[] = {"int", "float", "bool", "string", "list", "ints"};
  std::string out;
  for (const auto& k : config_schema()) {
    std::string limits;
    if (!k.choices.empty())
      limits = fmt::format(" (one of {})", fmt::join(k.choices, ", "));
    else if (k.type == ConfigType::Int || k.type == ConfigType::Float ||
             k.type == ConfigType::IntList)
      limits = fmt::format(" (range [{}, {}])", k.min, k.max);
    out += fmt::format("{:<30} {:<6} = {:<14} {}{}\n", k.key, kTypes[static_cast<int>(k.type)],
                       value_to_toml(k.fallback), k.help, limits);
  }
  return out;
}

Config::Config() {
  for (const auto& spec : config_schema()) values_[spec.key] = spec.fallback;
}

void Config::assign(const ConfigKey& spec, ConfigValue v, const std::string& source) {
  auto out_of_range = [&](double x) {
    return Error(fmt::format("{}: key '{}': value {} is out of range [{}, {}]", source, spec.key, x,
                             spec.min, spec.max));
  };
  if (auto* i = std::get_if<int64_t>(&v)) {
    if (*i < spec.min || *i > spec.max) throw out_of_range(static_cast<double>(*i));
  } else if (auto* list = std::get_if<std::vector<int64_t>>(&v)) {
    for (int64_t item : *list)
      if (item < spec.min || item > spec.max) throw out_of_range(static_cast<double>(item));
  } else if (auto* d = std::get_if<double>(&v)) {
    if (!std::isfinite(*d) || *d < spec.min || *d > spec.max) throw out_of_range(*d);
  } else if (auto* s = std::get_if<std::string>(&v); s && !spec.choices.empty()) {
    if (std::find(spec.choices.begin(), spec.choices.end(), *s) == spec.choices.end())
      throw Error(fmt::format("{}: key '{}': '{}' is not one of: {}", source, spec.key, *s,
                              fmt::join(spec.choices, ", ")));
  }
  values_[spec.key] = std::move(v);
}

Config Config::from_toml(std::string_view toml_text, const std::string& source,
                         const std::vector<std::string>& overrides) {
  Config cfg;
  cfg.origin_ = source;
  toml::table root;
  try {
    root = toml::parse(toml_text, source);
  } catch (const toml::parse_error& e) {
    throw Error(fmt::format("{}:{}:{}: invalid TOML: {}", source, e.source().begin.line,
                            e.source().begin.column, e.description()));
  }
  for (const auto& [section, node] : root) {
    const toml::table* table = node.as_table();
    if (!table)
      throw Error(fmt::format("{}: key '{}' must be inside a [section]", source, section.str()));
    for (const auto& [name, value] : *table) {
      std::string key = fmt::format("{}.{}", section.str(), name.str());
      const ConfigKey* spec = find_key(key);
      if (!spec) throw Error(unknown_key_message(source, key));
      cfg.assign(*spec, convert(*spec, value, source), source);
    }
  }
  for (const auto& item : overrides) {
    auto eq = item.find('=');
    if (eq == std::string::npos)
      throw Error(fmt::format("--set '{}': expected section.key=value", item));
    cfg.set(item.substr(0, eq), std::string_view(item).substr(eq + 1), "--set " + item);
  }
  return cfg;
}

void Config::set(std::string_view key, std::string_view toml_value, const std::string& source) {
  const ConfigKey* spec = find_key(key);
  if (!spec) throw Error(unknown_key_message(source, key));
  toml::table parsed;
  try {
    parsed = toml::parse("v = " + std::string(toml_value));
  } catch (const toml::parse_error&) {
    // `--set world.background=gray` is friendlier than demanding shell-quoted TOML strings.
    if (spec->type != ConfigType::String)
      throw Error(fmt::format("{}: key '{}': '{}' is not {}", source, key, toml_value,
                              type_name(spec->type)));
    parsed.insert("v", std::string(toml_value));
  }
  assign(*spec, convert(*spec, *parsed.get("v"), source), source);
}

std::vector<std::string> Config::preset_names() {
  std::vector<std::string> names;
  for (const auto& [name, text] : embedded_presets()) names.push_back(name);
  return names;
}

Config Config::load(const std::string& preset_or_path, const std::vector<std::string>& overrides) {
  for (const auto& [name, text] : embedded_presets())
    if (name == preset_or_path) return from_toml(text, "configs/" + name + ".toml", overrides);
  if (preset_or_path.find('/') == std::string::npos &&
      preset_or_path.find('.') == std::string::npos)
    throw Error(fmt::format("unknown preset '{}' (presets: {}; or give a path to a .toml file)",
                            preset_or_path, fmt::join(preset_names(), ", ")));
  return from_toml(read_file(preset_or_path), preset_or_path, overrides);
}

const ConfigValue& Config::value(std::string_view key, ConfigType type) const {
  const ConfigKey* spec = find_key(key);
  // Asking for an undeclared key or the wrong type is a programming error, not user input.
  if (!spec || spec->type != type)
    throw std::logic_error(
        fmt::format("config key '{}' read as {} but declared otherwise", key, type_name(type)));
  return values_.find(key)->second;
}

int64_t Config::get_int(std::string_view key) const {
  return std::get<int64_t>(value(key, ConfigType::Int));
}
double Config::get_float(std::string_view key) const {
  return std::get<double>(value(key, ConfigType::Float));
}
bool Config::get_bool(std::string_view key) const {
  return std::get<bool>(value(key, ConfigType::Bool));
}
const std::string& Config::get_string(std::string_view key) const {
  return std::get<std::string>(value(key, ConfigType::String));
}
const std::vector<std::string>& Config::get_strings(std::string_view key) const {
  return std::get<std::vector<std::string>>(value(key, ConfigType::StringList));
}
const std::vector<int64_t>& Config::get_ints(std::string_view key) const {
  return std::get<std::vector<int64_t>>(value(key, ConfigType::IntList));
}

nlohmann::json Config::to_json() const {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [key, v] : values_) {
    auto dot = key.find('.');
    out[key.substr(0, dot)][key.substr(dot + 1)] = value_to_json(v);
  }
  return out;
}

std::string Config::to_toml() const {
  std::string out = fmt::format("# effective configuration (from {})\n", origin_);
  std::string section;
  for (const auto& [key, v] : values_) {  // map order groups keys by section
    auto dot = key.find('.');
    if (key.substr(0, dot) != section) {
      section = key.substr(0, dot);
      out += fmt::format("\n[{}]\n", section);
    }
    out += fmt::format("{} = {}\n", key.substr(dot + 1), value_to_toml(v));
  }
  return out;
}

}  // namespace recap
