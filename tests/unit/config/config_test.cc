#include "config/config.h"

#include <unistd.h>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

namespace rtenv::config {
namespace {

namespace fs = std::filesystem;

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/rtenv-config-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    home_ = tmpl;
  }
  void TearDown() override { fs::remove_all(home_); }

  void write_config(const std::string& text) { std::ofstream(home_ / "config.json") << text; }
  Result<Config> load(std::map<std::string, std::string> vars = {}, const Flags& flags = {}) {
    vars.emplace("RTENV_HOME", home_.string());
    return Config::load(environment_of(std::move(vars)), flags);
  }
  std::string file() const { return (home_ / "config.json").string(); }

  fs::path home_;
};

TEST_F(ConfigTest, DefaultsMatchTheDocumentedOnes) {
  auto c = load();
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_EQ(c->home(), home_);
  EXPECT_EQ(c->store(), "file://" + (home_ / "store").string());
  EXPECT_TRUE(c->store_is_home_default());
  EXPECT_EQ(c->cache_limit(), uint64_t{10} << 30);
  EXPECT_EQ(c->cache_low(), (uint64_t{10} << 30) / 10 * 8);
  EXPECT_EQ(c->failure_ttl_seconds(), 10.0);
  EXPECT_EQ(c->python(), "python3");
  EXPECT_EQ(c->installer(), "auto");
  EXPECT_EQ(c->share_builds(), "auto");
  EXPECT_EQ(c->build_lease_seconds(), 60.0);
  EXPECT_EQ(c->agent_idle_exit_seconds(), 600);
  EXPECT_FALSE(c->no_agent());
  EXPECT_EQ(c->max_package_size(), uint64_t{2} << 30);
  EXPECT_EQ(c->warn_file_size(), uint64_t{100} << 20);
  EXPECT_FALSE(c->store_token());
  EXPECT_FALSE(c->uv());
  EXPECT_TRUE(c->plugins().empty());
  EXPECT_FALSE(c->metrics_listen());
  for (const auto& key : Config::keys()) {
    if (key == "home") continue;
    EXPECT_EQ(c->origin(key).kind, Origin::Kind::kDefault) << key;
  }
  EXPECT_EQ(c->origin("home").describe(), "RTENV_HOME");
}

TEST_F(ConfigTest, HomeDefaultsToXdgCacheThenHome) {
  auto c = Config::load(environment_of({{"XDG_CACHE_HOME", "/x/cache"}, {"HOME", "/h"}}));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->home(), fs::path("/x/cache/rtenv"));
  EXPECT_EQ(c->origin("home").describe(), "default");
  c = Config::load(environment_of({{"HOME", "/h"}}));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->home(), fs::path("/h/.cache/rtenv"));
  EXPECT_FALSE(Config::load(environment_of({})));
  auto relative = Config::load(environment_of({{"RTENV_HOME", "rel"}}));
  ASSERT_FALSE(relative);
  EXPECT_NE(relative.error().message().find("absolute"), std::string::npos);
}

TEST_F(ConfigTest, FlagsBeatVariablesBeatTheFileBeatsDefaults) {
  write_config(R"({"store": "/from/file", "cache_limit": "1G", "python": "python3.11"})");
  auto c = load({{"RTENV_STORE", "/from/var"}, {"RTENV_CACHE_LIMIT", "2G"}});
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_EQ(c->store(), "/from/var");
  EXPECT_EQ(c->origin("store").describe(), "RTENV_STORE");
  EXPECT_EQ(c->cache_limit(), uint64_t{2} << 30);
  EXPECT_EQ(c->python(), "python3.11");
  EXPECT_EQ(c->origin("python").kind, Origin::Kind::kFile);
  EXPECT_EQ(c->origin("python").describe(), file());

  Flags flags;
  flags.store = "/from/flag";
  flags.max_package_size = "5M";
  c = load({{"RTENV_STORE", "/from/var"}}, flags);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->store(), "/from/flag");
  EXPECT_EQ(c->origin("store").describe(), "--store");
  EXPECT_EQ(c->max_package_size(), uint64_t{5} << 20);
  EXPECT_EQ(c->origin("max_package_size").describe(), "--max-package-size");
}

TEST_F(ConfigTest, EmptyVariablesAreUnset) {
  write_config(R"({"store": "/from/file"})");
  auto c = load({{"RTENV_STORE", ""}, {"RTENV_CACHE_LIMIT", ""}});
  ASSERT_TRUE(c);
  EXPECT_EQ(c->store(), "/from/file");
  EXPECT_EQ(c->origin("cache_limit").kind, Origin::Kind::kDefault);
}

TEST_F(ConfigTest, CacheLowFollowsTheLimitUnlessGiven) {
  auto c = load({{"RTENV_CACHE_LIMIT", "1000"}});
  ASSERT_TRUE(c);
  EXPECT_EQ(c->cache_low(), 800u);
  EXPECT_EQ(c->origin("cache_low").kind, Origin::Kind::kDefault);
  write_config(R"({"cache_low": "100"})");
  c = load({{"RTENV_CACHE_LIMIT", "1000"}});
  ASSERT_TRUE(c);
  EXPECT_EQ(c->cache_low(), 100u);
  c = load({{"RTENV_CACHE_LIMIT", "50"}});  // never above the limit
  ASSERT_TRUE(c);
  EXPECT_EQ(c->cache_low(), 50u);
}

TEST_F(ConfigTest, S3EndpointTakesTheFirstSetVariable) {
  auto c = load({{"AWS_ENDPOINT_URL", "http://aws:1"}, {"AWS_ENDPOINT_URL_S3", "http://s3:2"}});
  ASSERT_TRUE(c);
  EXPECT_EQ(c->s3_endpoint(), "http://s3:2");
  EXPECT_EQ(c->origin("s3_endpoint").describe(), "AWS_ENDPOINT_URL_S3");
  c = load({{"AWS_ENDPOINT_URL", "http://aws:1"}, {"RTENV_S3_ENDPOINT", "http://ours:3"}});
  ASSERT_TRUE(c);
  EXPECT_EQ(c->s3_endpoint(), "http://ours:3");
}

TEST_F(ConfigTest, UnknownFileKeyIsAnErrorWithASuggestion) {
  write_config(R"({"cache_limt": "1G"})");
  auto c = load();
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(c.error().message().find(file()), std::string::npos);
  EXPECT_NE(c.error().message().find("unknown key 'cache_limt'; did you mean 'cache_limit'?"),
            std::string::npos)
      << c.error().message();

  write_config(R"({"zzzzzzzz": 1})");
  c = load();
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message().find("known: "), std::string::npos) << c.error().message();

  write_config(R"({"store_token": "secret"})");
  c = load();
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message().find("RTENV_STORE_TOKEN"), std::string::npos);
}

TEST_F(ConfigTest, MalformedFileNamesLineAndColumn) {
  write_config("{\n  \"store\": \"/s\",\n}\n");
  auto c = load();
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message().find(file() + ":3:1: "), std::string::npos) << c.error().message();
  write_config("[1, 2]");
  c = load();
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message().find("expected a JSON object"), std::string::npos);
}

TEST_F(ConfigTest, WrongTypesNameTheKeyAndTheOrigin) {
  write_config(R"({"cache_limit": true})");
  auto c = load();
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message().find("cache_limit (from " + file() + "): expected a size"),
            std::string::npos)
      << c.error().message();

  std::remove((home_ / "config.json").c_str());
  c = load({{"RTENV_CACHE_LIMIT", "lots"}});
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message().find("cache_limit (from RTENV_CACHE_LIMIT)"), std::string::npos)
      << c.error().message();

  c = load({{"RTENV_INSTALLER", "conda"}});
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message().find("installer (from RTENV_INSTALLER): must be auto, uv, pip"),
            std::string::npos)
      << c.error().message();

  c = load({{"RTENV_FAILURE_TTL", "soon"}});
  ASSERT_FALSE(c);
  c = load({{"RTENV_AGENT_IDLE_EXIT", "1.5"}});
  ASSERT_FALSE(c);
  c = load({{"RTENV_FAILURE_TTL", "0.5"}});
  ASSERT_TRUE(c);
  EXPECT_EQ(c->failure_ttl_seconds(), 0.5);
  c = load({{"RTENV_NO_AGENT", "0"}});
  ASSERT_TRUE(c);
  EXPECT_FALSE(c->no_agent());
  c = load({{"RTENV_NO_AGENT", "1"}});
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->no_agent());
}

TEST_F(ConfigTest, PluginsAreValidatedAndTheVariableReplacesTheFileList) {
  write_config(R"({"plugins": [{"field": "hello", "exec": "/bin/hello"},
                               {"field": "other", "exec": "/bin/other", "priority": 3}]})");
  auto c = load();
  ASSERT_TRUE(c) << c.error().message();
  ASSERT_EQ(c->plugins().size(), 2u);
  EXPECT_EQ(c->plugins()[0], (Plugin{"hello", "/bin/hello", 10}));
  EXPECT_EQ(c->plugins()[1].priority, 3);

  c = load({{"RTENV_PLUGINS", R"([{"field": "third", "exec": "/bin/third"}])"}});
  ASSERT_TRUE(c);
  ASSERT_EQ(c->plugins().size(), 1u);
  EXPECT_EQ(c->plugins()[0].field, "third");
  EXPECT_EQ(c->origin("plugins").describe(), "RTENV_PLUGINS");

  auto fails_with = [&](const std::string& list, const std::string& part) {
    auto r = load({{"RTENV_PLUGINS", list}});
    ASSERT_FALSE(r) << list;
    EXPECT_NE(r.error().message().find(part), std::string::npos) << r.error().message();
  };
  fails_with(R"([{"field": "pip", "exec": "/bin/x"}])", "built-in field");
  fails_with(R"([{"field": "a", "exec": "bin/x"}])", "plugins[0].exec");
  fails_with(R"([{"field": "a", "exec": "/x"}, {"field": "a", "exec": "/y"}])", "plugins[1].field");
  fails_with(R"([{"field": "a", "exec": "/x", "priorty": 1}])", "did you mean 'priority'?");
  fails_with(R"([{"field": "a", "exec": "/x", "priority": "high"}])", "plugins[0].priority");
  fails_with(R"({"field": "a"})", "expected a list");
  fails_with(R"([{"field": "a",}])", "RTENV_PLUGINS:1:");
}

TEST_F(ConfigTest, KindLimitsKnowTheKinds) {
  write_config(R"({"kind_limits": {"package": "1G", "python": 1000, "conda": "2K",
                                   "plugin:hello": "5M"},
                   "plugins": [{"field": "hello", "exec": "/bin/hello"}]})");
  auto c = load();
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_EQ(c->kind_limits().at("python"), 1000u);
  EXPECT_EQ(c->kind_limits().at("conda"), 2048u);
  EXPECT_EQ(c->kind_limits().at("plugin:hello"), uint64_t{5} << 20);

  write_config(R"({"kind_limits": {"pakage": "1G"}})");
  c = load();
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message().find("unknown kind 'pakage'; did you mean 'package'?"),
            std::string::npos)
      << c.error().message();
  write_config(R"({"kind_limits": {"plugin:hello": "1G"}})");  // no such plugin
  EXPECT_FALSE(load());
}

TEST_F(ConfigTest, FingerprintFollowsWhatTheAgentActsOn) {
  auto a = load();
  ASSERT_TRUE(a);
  auto same = load(
      {{"RTENV_NO_AGENT", "1"}, {"RTENV_AGENT_IDLE_EXIT", "5"}, {"RTENV_MAX_PACKAGE_SIZE", "1M"}});
  ASSERT_TRUE(same);
  EXPECT_EQ(a->fingerprint(), same->fingerprint());
  EXPECT_EQ(a->fingerprint().size(), 64u);

  auto other = load({{"RTENV_CACHE_LIMIT", "1K"}});
  ASSERT_TRUE(other);
  EXPECT_NE(a->fingerprint(), other->fingerprint());
  EXPECT_EQ(Config::differing_keys(a->agent_values(), other->agent_values()),
            (std::vector<std::string>{"cache_limit", "cache_low"}));

  auto pip = load({{"RTENV_INSTALLER", "pip"}});
  ASSERT_TRUE(pip);
  EXPECT_EQ(Config::differing_keys(a->agent_values(), pip->agent_values()),
            (std::vector<std::string>{"installer"}));

  // The same value from another origin is the same configuration.
  write_config(R"({"installer": "pip"})");
  auto from_file = load();
  ASSERT_TRUE(from_file);
  EXPECT_EQ(from_file->fingerprint(), pip->fingerprint());
}

TEST_F(ConfigTest, MetricsListenFromEachLayerAndOutOfTheFingerprint) {
  write_config(R"({"metrics_listen": "127.0.0.1:9100"})");
  auto file_only = load();
  ASSERT_TRUE(file_only) << file_only.error().message();
  EXPECT_EQ(file_only->metrics_listen(), "127.0.0.1:9100");
  EXPECT_EQ(file_only->origin("metrics_listen").describe(), file());

  auto var = load({{"RTENV_METRICS_LISTEN", "0.0.0.0:9200"}});
  ASSERT_TRUE(var);
  EXPECT_EQ(var->metrics_listen(), "0.0.0.0:9200");
  EXPECT_EQ(var->origin("metrics_listen").describe(), "RTENV_METRICS_LISTEN");

  Flags flags;
  flags.metrics_listen = "127.0.0.1:0";
  auto flag = load({{"RTENV_METRICS_LISTEN", "0.0.0.0:9200"}}, flags);
  ASSERT_TRUE(flag);
  EXPECT_EQ(flag->metrics_listen(), "127.0.0.1:0");
  EXPECT_EQ(flag->origin("metrics_listen").describe(), "--metrics-listen");

  // Where metrics are served is not how the agent sets envs up: an agent started with the flag
  // is not "another configuration" to its clients.
  EXPECT_EQ(file_only->fingerprint(), flag->fingerprint());
  write_config(R"({"metrics_listen": 9100})");
  auto wrong = load();
  ASSERT_FALSE(wrong);
  EXPECT_NE(wrong.error().message().find("metrics_listen"), std::string::npos);
}

TEST_F(ConfigTest, TheTokenIsNeverShown) {
  auto c = load({{"RTENV_STORE_TOKEN", "s3cret"}});
  ASSERT_TRUE(c);
  EXPECT_EQ(c->store_token(), "s3cret");
  std::string shown = c->to_json().dump() + c->agent_values().dump();
  EXPECT_EQ(shown.find("s3cret"), std::string::npos);
  EXPECT_EQ(c->to_json()["store_token"]["origin"], "RTENV_STORE_TOKEN");
  auto other = load({{"RTENV_STORE_TOKEN", "other"}});
  ASSERT_TRUE(other);
  EXPECT_NE(c->fingerprint(), other->fingerprint());
}

TEST_F(ConfigTest, ToJsonHasEveryKeyWithItsOrigin) {
  auto c = load({{"RTENV_CACHE_LIMIT", "1G"}});
  ASSERT_TRUE(c);
  auto j = c->to_json();
  EXPECT_EQ(j.size(), Config::keys().size());
  EXPECT_EQ(j["cache_limit"]["value"], uint64_t{1} << 30);
  EXPECT_EQ(j["cache_limit"]["origin"], "RTENV_CACHE_LIMIT");
  EXPECT_EQ(j["store"]["origin"], "default");
}

TEST(FormatSize, UsesTheLargestExactUnit) {
  EXPECT_EQ(format_size(uint64_t{10} << 30), "10G");
  EXPECT_EQ(format_size(uint64_t{100} << 20), "100M");
  EXPECT_EQ(format_size(1000), "1000");
  EXPECT_EQ(format_size(0), "0");
}

}  // namespace
}  // namespace rtenv::config
