// Typed, validated configuration. Every key recap understands is declared once in the schema
// (config_schema.cpp) with its type, default, range and help; presets in configs/*.toml and
// `--set section.key=value` overrides may only set declared keys. Anything else fails with
// the source (file or --set), the key and the reason.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

namespace recap {

using ConfigValue = std::variant<int64_t, double, bool, std::string, std::vector<std::string>,
                                 std::vector<int64_t>>;

// The order matches ConfigValue's alternatives.
enum class ConfigType { Int, Float, Bool, String, StringList, IntList };

struct ConfigKey {
  std::string key;  // "section.name"
  ConfigType type;
  ConfigValue fallback;  // the default when no preset sets it
  std::string help;
  double min = -1e300;  // inclusive bounds for Int/Float and each IntList element
  double max = 1e300;
  std::vector<std::string> choices;  // allowed values for String (empty: any)
};

// The schema: every key recap reads. Defined in config_schema.cpp.
const std::vector<ConfigKey>& config_schema();
// One line per key: name, type, default, range or choices, help (for `recap config keys`).
std::string describe_config_schema();

class Config {
 public:
  // Schema defaults only.
  Config();

  // Defaults, then the TOML text (named `source` in errors), then each "key=value" override.
  static Config from_toml(std::string_view toml_text, const std::string& source,
                          const std::vector<std::string>& overrides = {});
  // A preset by name (smoke, quick, full: compiled into the binary) or a path to a .toml file.
  static Config load(const std::string& preset_or_path,
                     const std::vector<std::string>& overrides = {});
  static std::vector<std::string> preset_names();

  int64_t get_int(std::string_view key) const;
  double get_float(std::string_view key) const;
  bool get_bool(std::string_view key) const;
  const std::string& get_string(std::string_view key) const;
  const std::vector<std::string>& get_strings(std::string_view key) const;
  const std::vector<int64_t>& get_ints(std::string_view key) const;

  // Sets one value from TOML value syntax ("3", "0.1", "true", "\"x\"", "[\"a\",\"b\"]");
  // a bare word is accepted as a string. `source` names where it came from in errors.
  void set(std::string_view key, std::string_view toml_value, const std::string& source);

  // Where the configuration came from (preset name or file path), for the manifest.
  const std::string& origin() const { return origin_; }

  nlohmann::json to_json() const;
  std::string to_toml() const;  // the effective config, loadable again with from_toml

 private:
  const ConfigValue& value(std::string_view key, ConfigType type) const;
  void assign(const ConfigKey& spec, ConfigValue v, const std::string& source);

  std::map<std::string, ConfigValue, std::less<>> values_;
  std::string origin_ = "defaults";
};

}  // namespace recap
