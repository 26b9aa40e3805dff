#include "agent/state_db.h"

#include <sqlite3.h>

#include <gtest/gtest.h>

#include "testing/temp_dir.h"

namespace rtenv::agent {
namespace {

void exec(const std::filesystem::path& file, const char* sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(file.c_str(), &db), SQLITE_OK);
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql, nullptr, nullptr, &err);
  std::string message = err ? err : "";
  sqlite3_free(err);
  sqlite3_close(db);
  ASSERT_EQ(rc, SQLITE_OK) << message;
}

TEST(StateDbTest, AnUnversionedHomeIsMigratedKindsByUri) {
  testing::TempDir tmp;
  auto file = tmp / "agent.db";
  // What an agent from before schema versions left: kinds named after the asking field.
  exec(file,
       "CREATE TABLE resources(uri TEXT PRIMARY KEY, kind TEXT NOT NULL, size_bytes INTEGER NOT "
       "NULL DEFAULT 0, created_ms INTEGER NOT NULL, last_used_ms INTEGER NOT NULL);"
       "INSERT INTO resources VALUES('rtenv://sha256/aa', 'working_dir', 1, 1, 1);"
       "INSERT INTO resources VALUES('rtenv://sha256/bb', 'py_modules', 1, 1, 1);"
       "INSERT INTO resources VALUES('pyenv://cc', 'py_modules', 1, 1, 1);");
  auto db = StateDb::open(file);
  ASSERT_TRUE(db.ok()) << db.error().message();
  auto rows = (*db)->resources();
  ASSERT_TRUE(rows.ok());
  std::map<std::string, std::string> kinds;
  for (const auto& r : *rows) kinds[r.uri] = r.kind;
  EXPECT_EQ(kinds["rtenv://sha256/aa"], "package");
  EXPECT_EQ(kinds["rtenv://sha256/bb"], "package");
  EXPECT_EQ(kinds["pyenv://cc"], "python");
  // A resource linked again keeps the kind it is given.
  ASSERT_TRUE((*db)->link_resource("env1", "pyenv://cc", "python", 2).ok());
  db->reset();
  // Opened again: already current, nothing changes.
  EXPECT_TRUE(StateDb::open(file).ok());
}

TEST(StateDbTest, ANewerSchemaIsRefusedWithWhatToDo) {
  testing::TempDir tmp;
  auto file = tmp / "agent.db";
  exec(file, "PRAGMA user_version = 99;");
  auto db = StateDb::open(file);
  ASSERT_FALSE(db.ok());
  EXPECT_NE(db.error().message().find("schema version 99"), std::string::npos)
      << db.error().message();
  EXPECT_NE(db.error().message().find("newer rtenv"), std::string::npos) << db.error().message();
}

TEST(StateDbTest, CountsReferencesHoldersEnvsAndResources) {
  testing::TempDir tmp;
  auto db = StateDb::open(tmp / "agent.db");
  ASSERT_TRUE(db.ok()) << db.error().message();
  StateDb& d = **db;
  auto empty = d.counts();
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->references, 0u);
  EXPECT_TRUE(empty->resources.empty());

  ASSERT_TRUE(d.upsert_env("e1", "", "{}", 1).ok());
  ASSERT_TRUE(d.upsert_env("e2", "", "{}", 1).ok());
  ASSERT_TRUE(d.set_env_state("e2", "ready", "", "[]", 2).ok());
  ASSERT_TRUE(d.add_ref("e1", "job:a", 1).ok());
  ASSERT_TRUE(d.add_ref("e2", "job:a", 1).ok());
  ASSERT_TRUE(d.add_ref("e2", "pid:1:2", 1).ok());
  ASSERT_TRUE(d.link_resource("e2", "rtenv://sha256/aa", "package", 1).ok());
  ASSERT_TRUE(d.set_resource_size("rtenv://sha256/aa", 1234).ok());

  auto c = d.counts();
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->references, 3u);
  EXPECT_EQ(c->holders, 2u);
  EXPECT_EQ(c->envs_by_state["ready"], 1u);
  EXPECT_EQ(c->envs_by_state.size(), 2u);  // e1 is still "creating"
  ASSERT_EQ(c->resources.size(), 1u);
  EXPECT_EQ(c->resources[0].kind, "package");
  EXPECT_EQ(c->resources[0].uri, "rtenv://sha256/aa");
  EXPECT_EQ(c->resources[0].size_bytes, 1234u);
}

}  // namespace
}  // namespace rtenv::agent
