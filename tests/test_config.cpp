#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/config.h"
#include "core/error.h"
#include "test_util.h"

namespace recap {
namespace {

using ::testing::HasSubstr;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

TEST(Config, DefaultsComeFromTheSchema) {
  Config c;
  EXPECT_EQ(c.get_int("run.seed"), 1234);
  EXPECT_EQ(c.get_int("checkpoint.keep_last"), 3);
}

TEST(Config, TomlAndOverridesApplyInOrder) {
  Config c = Config::from_toml("[run]\nseed = 7\n[checkpoint]\nkeep_last = 5\n", "a.toml",
                               {"run.seed=9"});
  EXPECT_EQ(c.get_int("run.seed"), 9);
  EXPECT_EQ(c.get_int("checkpoint.keep_last"), 5);
  EXPECT_EQ(c.origin(), "a.toml");
}

TEST(Config, UnknownKeyNamesFileAndKey) {
  auto msg = error_of([] { Config::from_toml("[run]\nsede = 7\n", "configs/x.toml"); });
  EXPECT_THAT(msg, HasSubstr("configs/x.toml"));
  EXPECT_THAT(msg, HasSubstr("unknown key 'run.sede'"));
  EXPECT_THAT(msg, HasSubstr("run.seed"));  // the suggestion list
}

TEST(Config, UnknownSectionAndTopLevelKeyRejected) {
  EXPECT_THAT(error_of([] { Config::from_toml("[nope]\na = 1\n", "f.toml"); }),
              HasSubstr("unknown key 'nope.a'"));
  EXPECT_THAT(error_of([] { Config::from_toml("seed = 1\n", "f.toml"); }),
              HasSubstr("f.toml: key 'seed' must be inside a [section]"));
}

TEST(Config, WrongTypeNamesFileKeyAndTypes) {
  auto msg = error_of([] { Config::from_toml("[run]\nseed = \"abc\"\n", "p.toml"); });
  EXPECT_THAT(msg, HasSubstr("p.toml: key 'run.seed': expected an integer, got string"));
}

TEST(Config, OutOfRangeRejected) {
  auto msg = error_of([] { Config::from_toml("[checkpoint]\nkeep_last = 0\n", "p.toml"); });
  EXPECT_THAT(msg, HasSubstr("p.toml: key 'checkpoint.keep_last': value 0 is out of range"));
}

TEST(Config, InvalidTomlGivesLine) {
  auto msg = error_of([] { Config::from_toml("[run]\nseed = = 3\n", "bad.toml"); });
  EXPECT_THAT(msg, HasSubstr("bad.toml:2:"));
  EXPECT_THAT(msg, HasSubstr("invalid TOML"));
}

TEST(Config, SetOverrideErrorsNameTheFlag) {
  EXPECT_THAT(error_of([] { Config::from_toml("", "x", {"run.seed=abc"}); }),
              HasSubstr("--set run.seed=abc: key 'run.seed': 'abc' is not an integer"));
  EXPECT_THAT(error_of([] { Config::from_toml("", "x", {"run.seed"}); }),
              HasSubstr("expected section.key=value"));
  EXPECT_THAT(error_of([] { Config::from_toml("", "x", {"run.speed=1"}); }),
              HasSubstr("unknown key 'run.speed'"));
}

TEST(Config, IntegerListsParseValidateAndRoundTrip) {
  Config c = Config::from_toml("[unet]\nchannel_mult = [1, 2, 4]\n", "u.toml");
  EXPECT_EQ(c.get_ints("unet.channel_mult"), (std::vector<int64_t>{1, 2, 4}));
  EXPECT_EQ(Config::from_toml(c.to_toml(), "again").to_json(), c.to_json());
  EXPECT_THAT(error_of([] { Config::from_toml("[unet]\nchannel_mult = [1, \"a\"]\n", "u.toml"); }),
              HasSubstr("u.toml: key 'unet.channel_mult': expected a list of integers, found a "
                        "string element"));
  EXPECT_THAT(error_of([] { Config::from_toml("[unet]\nchannel_mult = 3\n", "u.toml"); }),
              HasSubstr("expected a list of integers, got integer"));
  EXPECT_THAT(error_of([] { Config::from_toml("", "x", {"unet.channel_mult=[1, 0]"}); }),
              HasSubstr("value 0 is out of range [1, 64]"));
}

TEST(Config, EffectiveTomlRoundTrips) {
  Config a = Config::from_toml("[run]\nseed = 42\n", "a.toml");
  Config b = Config::from_toml(a.to_toml(), "effective.toml");
  EXPECT_EQ(a.to_json(), b.to_json());
}

TEST(Config, EveryPresetLoadsAndRoundTrips) {
  auto names = Config::preset_names();
  for (const char* expected : {"smoke", "quick", "full"})
    EXPECT_NE(std::find(names.begin(), names.end(), expected), names.end()) << expected;
  for (const auto& name : names) {
    Config c = Config::load(name);
    EXPECT_EQ(Config::from_toml(c.to_toml(), name).to_json(), c.to_json()) << name;
  }
}

TEST(Config, UnknownPresetListsPresets) {
  auto msg = error_of([] { Config::load("quik"); });
  EXPECT_THAT(msg, HasSubstr("unknown preset 'quik'"));
  EXPECT_THAT(msg, HasSubstr("quick"));
}

TEST(Config, LoadsFromFilePath) {
  test::TempDir dir("config");
  auto path = dir / "mine.toml";
  std::FILE* f = std::fopen(path.c_str(), "w");
  std::fputs("[run]\nseed = 77\n", f);
  std::fclose(f);
  EXPECT_EQ(Config::load(path.string()).get_int("run.seed"), 77);
  EXPECT_THAT(error_of([&] { Config::load((dir / "missing.toml").string()); }),
              HasSubstr("missing.toml: cannot open"));
}

}  // namespace
}  // namespace recap
