#include "env/exec_plugin.h"

#include <gtest/gtest.h>

#include "env/node_cache.h"
#include "env/setup.h"
#include "store/local_store.h"
#include "testing/temp_dir.h"
#include "util/fs.h"

namespace rtenv::env {
namespace {

// A plugin in shell: logs each verb; `create` writes the value into dir/value.json; `context`
// puts dir/bin first on PATH and sets GREETING. What the value's "mode" says makes it fail.
constexpr const char* kPlugin = R"SH(#!/bin/sh
req=$(cat)
echo "$1" >> "$(dirname "$0")/calls.log"
dir=$(printf '%s' "$req" | sed -n 's/.*"dir":"\([^"]*\)".*/\1/p')
case "$req" in *'"mode":"fail"'*) printf 'create: \033[31mhttps://user:s3cret@example.invalid/x refused\033[0m\r\n' >&2; exit 1 ;; esac
case "$req" in *'"mode":"hang"'*) [ "$1" = create ] && sleep 30 ;; esac
case "$req" in *'"mode":"chatty"'*) [ "$1" = create ] && exec yes ;; esac
case "$req" in *'"mode":"badname"'*) [ "$1" = context ] && echo '{"env": {"A=B": "x"}}' && exit 0 ;; esac
case "$1" in
  validate) case "$req" in *'"bad"'*) echo "greeting must be a string" >&2; exit 1 ;; esac
            echo '{}' ;;
  create) mkdir -p "$dir/bin" && printf '%s' "$req" > "$dir/value.json"
          echo '{"size_bytes": 1}' ;;
  context) echo "{\"env\": {\"GREETING\": \"hi\"}, \"prepend\": {\"PATH\": [\"$dir/bin\"]}}" ;;
  delete) echo '{}' ;;
  *) exit 2 ;;
esac
)SH";

class ExecPluginTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tmp_.write("plugin/hello", kPlugin, 0755);
    home_ = *Home::at(tmp_ / "home");
    store_ = std::move(store::LocalStore::open(home_.store())).value();
    auto registry = Registry::make({{"hello", tmp_ / "plugin/hello", 10}});
    ASSERT_TRUE(registry.ok()) << registry.error().message();
    registry_ = *registry;
    cache_ = std::make_unique<NodeCache>(home_, *store_, registry_->plugins());
  }
  void TearDown() override { spec::unregister_plugin_field("hello"); }

  spec::RuntimeEnv env_of(const std::string& text) {
    auto env = spec::RuntimeEnv::from_json_text(text);
    EXPECT_TRUE(env.ok()) << env.error().message();
    return *env;
  }
  size_t calls(const std::string& verb) {
    auto log = read_file(tmp_ / "plugin/calls.log");
    size_t n = 0;
    for (size_t p = log ? log->find(verb) : std::string::npos; p != std::string::npos;
         p = log->find(verb, p + 1)) {
      ++n;
    }
    return n;
  }

  testing::TempDir tmp_;
  Home home_;
  std::unique_ptr<store::BlobStore> store_;
  std::shared_ptr<const Registry> registry_;
  std::unique_ptr<NodeCache> cache_;
};

TEST_F(ExecPluginTest, CreatesOncePublishesAndContributes) {
  auto env = env_of(R"({"hello": {"greeting": "hi"}})");
  auto active = activate(env, *registry_, *cache_);
  ASSERT_TRUE(active.ok()) << active.error().message();
  ASSERT_EQ(active->plan.resources.size(), 1u);
  const std::string uri = active->plan.resources[0];
  EXPECT_TRUE(uri.starts_with("plugin://hello/")) << uri;
  EXPECT_EQ(cache_->kind_of(uri)->name(), "plugin:hello");
  auto vars = apply_environment(active->plan, {{"PATH", "/usr/bin"}});
  fs::path dir = cache_->kind_of(uri)->dir_of(uri);
  EXPECT_EQ(vars.at("GREETING"), "hi");
  EXPECT_EQ(vars.at("PATH"), (dir / "bin").string() + ":/usr/bin");
  EXPECT_TRUE(fs::exists(dir / "value.json"));
  EXPECT_TRUE(fs::is_empty(home_.tmp())) << "the temp dir was published by rename";

  // Again: nothing created, the kept context used.
  active->release();
  auto again = activate(env, *registry_, *cache_);
  ASSERT_TRUE(again.ok()) << again.error().message();
  EXPECT_EQ(calls("create"), 1u);
  EXPECT_EQ(calls("context"), 1u);
  EXPECT_EQ(again->plan, active->plan);

  // In use: not evicted. Released: evicted, with `delete` called.
  EXPECT_EQ(cache_->process_leases(uri), 1u);
  auto evicted = cache_->evict(uri);
  ASSERT_TRUE(evicted.ok());
  EXPECT_FALSE(*evicted);
  again->release();
  evicted = cache_->evict(uri);
  ASSERT_TRUE(evicted.ok());
  EXPECT_TRUE(*evicted);
  EXPECT_FALSE(fs::exists(dir));
  EXPECT_FALSE(cache_->is_ready(uri));
  EXPECT_EQ(calls("delete"), 1u);
  EXPECT_EQ(cache_->list_ready().size(), 0u);
}

TEST_F(ExecPluginTest, ValidateFailureNamesTheField) {
  auto env = env_of(R"({"hello": {"greeting": "bad"}})");
  auto r = validate_fields(env, *registry_, home_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error().message().find("runtime_env.hello"), std::string::npos);
  EXPECT_NE(r.error().message().find("greeting must be a string"), std::string::npos);
}

TEST_F(ExecPluginTest, CreateFailureCarriesStderrRedactedAndLeavesNothing) {
  auto env = env_of(R"({"hello": {"mode": "fail"}})");
  auto r = activate(env, *registry_, *cache_);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("refused"), std::string::npos) << r.error().message();
  EXPECT_EQ(r.error().message().find("s3cret"), std::string::npos) << r.error().message();
  EXPECT_EQ(r.error().message().find('\x1b'), std::string::npos) << "terminal escapes shown";
  EXPECT_EQ(r.error().message().find('\r'), std::string::npos);
  EXPECT_TRUE(fs::is_empty(home_.tmp()));
  EXPECT_TRUE(cache_->list_ready().empty());
}

TEST_F(ExecPluginTest, HangingCreateIsKilledAtTheDeadline) {
  auto env = env_of(R"({"hello": {"mode": "hang"}})");
  auto r = activate(env, *registry_, *cache_, nullptr, /*timeout_ms=*/300);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kTimeout);
  EXPECT_NE(r.error().message().find("timed out"), std::string::npos) << r.error().message();
}

TEST_F(ExecPluginTest, AReplyThatNeverEndsIsCutAndTheProgramKilled) {
  auto env = env_of(R"({"hello": {"mode": "chatty"}})");
  auto r = activate(env, *registry_, *cache_, nullptr, /*timeout_ms=*/20'000);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kTooLarge) << r.error().message();
  EXPECT_TRUE(cache_->list_ready().empty());
}

TEST_F(ExecPluginTest, AContextWithANameNoEnvironmentCanHoldIsRefusedBeforePublishing) {
  auto env = env_of(R"({"hello": {"mode": "badname"}})");
  auto r = activate(env, *registry_, *cache_);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("'A=B' is not a variable name"), std::string::npos)
      << r.error().message();
  EXPECT_TRUE(cache_->list_ready().empty()) << "nothing half-usable stays published";
}

TEST_F(ExecPluginTest, AFieldNoPluginHandlesIsUnsupportedOnTheNode) {
  spec::register_plugin_field("other");
  auto env = env_of(R"({"other": 1})");
  spec::unregister_plugin_field("other");
  auto r = plan(env, *registry_, *cache_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kUnsupported);
  EXPECT_NE(r.error().message().find("runtime_env.other: no plugin"), std::string::npos);
}

TEST(RegistryTest, APluginCannotTakeABuiltInFieldOrOneTwice) {
  EXPECT_FALSE(Registry::make({{"pip", "/p", 10}}).ok());
  EXPECT_FALSE(Registry::make({{"x", "/p", 10}, {"x", "/q", 10}}).ok());
  auto r = Registry::make({{"zz", "/p", 1}, {"aa", "/q", 20}});
  ASSERT_TRUE(r.ok()) << r.error().message();
  // In ascending priority: the plugin at 1 before every built-in field but env_vars & co. (0).
  std::vector<std::string> names;
  for (const auto& f : (*r)->fields()) names.push_back(f->name());
  EXPECT_EQ(names.front(), "config");
  EXPECT_EQ(names[3], "zz");
  EXPECT_EQ(names.back(), "aa");
  spec::unregister_plugin_field("zz");
  spec::unregister_plugin_field("aa");
}

}  // namespace
}  // namespace rtenv::env
