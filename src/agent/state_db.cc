#include "agent/state_db.h"

#include <sys/stat.h>

#include <map>

#include <fmt/format.h>
#include <sqlite3.h>

namespace rtenv::agent {
namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS envs(
  env_id TEXT PRIMARY KEY, job_id TEXT NOT NULL DEFAULT '', state TEXT NOT NULL,
  error TEXT NOT NULL DEFAULT '', summary TEXT NOT NULL DEFAULT '',
  timings TEXT NOT NULL DEFAULT '[]', created_ms INTEGER NOT NULL, last_used_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS resources(
  uri TEXT PRIMARY KEY, kind TEXT NOT NULL, size_bytes INTEGER NOT NULL DEFAULT 0,
  created_ms INTEGER NOT NULL, last_used_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS env_resources(
  env_id TEXT NOT NULL, uri TEXT NOT NULL, PRIMARY KEY(env_id, uri));
CREATE TABLE IF NOT EXISTS refs(
  env_id TEXT NOT NULL, holder TEXT NOT NULL, created_ms INTEGER NOT NULL,
  PRIMARY KEY(env_id, holder));
CREATE INDEX IF NOT EXISTS refs_by_holder ON refs(holder);
)sql";

// The schema's version (PRAGMA user_version). 0: a database from before versions were kept
// (the same tables). Each step migrates from the version before it.
constexpr int kSchemaVersion = 2;
constexpr const char* kMigrations[kSchemaVersion] = {
    // 0 -> 1: versioned; nothing else changed.
    "",
    // 1 -> 2: a resource's kind is its kind's name, derived from the URI ("package",
    // "python"), no longer the field that first asked for it ("working_dir", "py_modules").
    "UPDATE resources SET kind = CASE WHEN uri LIKE 'rtenv://%' THEN 'package' "
    "WHEN uri LIKE 'pyenv://%' THEN 'python' ELSE kind END;",
};

// A prepared statement, finalized on destruction.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &s_, nullptr);
  }
  ~Stmt() { sqlite3_finalize(s_); }
  Stmt& bind(int i, const std::string& v) {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& bind(int i, int64_t v) {
    sqlite3_bind_int64(s_, i, v);
    return *this;
  }
  /// SQLITE_ROW, SQLITE_DONE, or an error.
  int step() { return rc_ == SQLITE_OK ? sqlite3_step(s_) : rc_; }
  Result<void> run() {
    int rc = step();
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) return error();
    return ok_result();
  }
  std::string text(int col) {
    auto* p = sqlite3_column_text(s_, col);
    return p ? std::string(reinterpret_cast<const char*>(p), sqlite3_column_bytes(s_, col)) : "";
  }
  int64_t integer(int col) { return sqlite3_column_int64(s_, col); }
  Error error() const {
    return make_error(ErrorCode::kIo, "agent state database: {}", sqlite3_errmsg(db_));
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* s_ = nullptr;
  int rc_;
};

}  // namespace

Result<std::unique_ptr<StateDb>> StateDb::open(const std::filesystem::path& file) {
  sqlite3* db = nullptr;
  if (sqlite3_open(file.c_str(), &db) != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return make_error(ErrorCode::kIo, "cannot open agent state {}: {}", file.string(), msg);
  }
  std::unique_ptr<StateDb> out(new StateDb(db));
  // The owner's alone, whatever the umask: it names every env and holder of the node.
  (void)::chmod(file.c_str(), 0600);
  sqlite3_busy_timeout(db, 5000);
  RTENV_TRY(out->exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"));
  RTENV_TRY(out->exec("BEGIN IMMEDIATE"));
  auto migrated = [&]() -> Result<void> {
    int version = 0;
    {
      Stmt v(db, "PRAGMA user_version");
      if (v.step() == SQLITE_ROW) version = static_cast<int>(v.integer(0));
    }
    if (version > kSchemaVersion) {
      return make_error(ErrorCode::kInvalidArgument,
                        "agent state {} has schema version {}, newer than this rtenv knows ({}): "
                        "a newer rtenv wrote it; run that version, or move the file aside to "
                        "start over",
                        file.string(), version, kSchemaVersion);
    }
    RTENV_TRY(out->exec(kSchema));
    for (int v = version; v < kSchemaVersion; ++v) {
      if (*kMigrations[v]) RTENV_TRY(out->exec(kMigrations[v]));
    }
    if (version != kSchemaVersion) {
      RTENV_TRY(out->exec(fmt::format("PRAGMA user_version = {}", kSchemaVersion)));
    }
    return ok_result();
  }();
  if (!migrated) {
    (void)out->exec("ROLLBACK");
    return migrated.error();
  }
  RTENV_TRY(out->exec("COMMIT"));
  return out;
}

StateDb::~StateDb() { sqlite3_close(db_); }

Result<void> StateDb::exec(const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    return make_error(ErrorCode::kIo, "agent state database: {}", msg);
  }
  return ok_result();
}

Result<void> StateDb::begin() { return exec("BEGIN IMMEDIATE"); }
Result<void> StateDb::commit() { return exec("COMMIT"); }

Result<void> StateDb::upsert_env(const std::string& env_id, const std::string& job_id,
                                 const std::string& summary, int64_t now_ms) {
  return Stmt(db_,
              "INSERT INTO envs(env_id, job_id, state, summary, created_ms, last_used_ms) "
              "VALUES(?1, ?2, 'creating', ?3, ?4, ?4) ON CONFLICT(env_id) DO UPDATE SET "
              "last_used_ms = ?4")
      .bind(1, env_id)
      .bind(2, job_id)
      .bind(3, summary)
      .bind(4, now_ms)
      .run();
}

Result<void> StateDb::set_env_state(const std::string& env_id, const std::string& state,
                                    const std::string& error, const std::string& timings,
                                    int64_t now_ms) {
  return Stmt(db_,
              "UPDATE envs SET state = ?2, error = ?3, timings = ?4, last_used_ms = ?5 "
              "WHERE env_id = ?1")
      .bind(1, env_id)
      .bind(2, state)
      .bind(3, error)
      .bind(4, timings)
      .bind(5, now_ms)
      .run();
}

Result<void> StateDb::touch_env(const std::string& env_id, int64_t now_ms) {
  RTENV_TRY(Stmt(db_, "UPDATE envs SET last_used_ms = ?2 WHERE env_id = ?1")
                .bind(1, env_id)
                .bind(2, now_ms)
                .run());
  return Stmt(db_,
              "UPDATE resources SET last_used_ms = ?2 WHERE uri IN "
              "(SELECT uri FROM env_resources WHERE env_id = ?1)")
      .bind(1, env_id)
      .bind(2, now_ms)
      .run();
}

Result<void> StateDb::touch_holder_envs(const std::string& holder, int64_t now_ms) {
  RTENV_TRY(Stmt(db_,
                 "UPDATE envs SET last_used_ms = ?2 WHERE env_id IN "
                 "(SELECT env_id FROM refs WHERE holder = ?1)")
                .bind(1, holder)
                .bind(2, now_ms)
                .run());
  return Stmt(db_,
              "UPDATE resources SET last_used_ms = ?2 WHERE uri IN (SELECT er.uri FROM "
              "env_resources er JOIN refs f ON f.env_id = er.env_id WHERE f.holder = ?1)")
      .bind(1, holder)
      .bind(2, now_ms)
      .run();
}

Result<void> StateDb::link_resource(const std::string& env_id, const std::string& uri,
                                    const std::string& kind, int64_t now_ms) {
  RTENV_TRY(Stmt(db_,
                 "INSERT INTO resources(uri, kind, created_ms, last_used_ms) VALUES(?1, ?2, ?3, "
                 "?3) ON CONFLICT(uri) DO UPDATE SET last_used_ms = ?3, kind = ?2")
                .bind(1, uri)
                .bind(2, kind)
                .bind(3, now_ms)
                .run());
  return Stmt(db_, "INSERT OR IGNORE INTO env_resources(env_id, uri) VALUES(?1, ?2)")
      .bind(1, env_id)
      .bind(2, uri)
      .run();
}

Result<void> StateDb::adopt_resource(const std::string& uri, const std::string& kind,
                                     uint64_t bytes, int64_t now_ms) {
  return Stmt(db_,
              "INSERT OR IGNORE INTO resources(uri, kind, size_bytes, created_ms, last_used_ms) "
              "VALUES(?1, ?2, ?3, ?4, ?4)")
      .bind(1, uri)
      .bind(2, kind)
      .bind(3, static_cast<int64_t>(bytes))
      .bind(4, now_ms)
      .run();
}

Result<void> StateDb::set_resource_size(const std::string& uri, uint64_t bytes) {
  return Stmt(db_, "UPDATE resources SET size_bytes = ?2 WHERE uri = ?1")
      .bind(1, uri)
      .bind(2, static_cast<int64_t>(bytes))
      .run();
}

Result<bool> StateDb::add_ref(const std::string& env_id, const std::string& holder,
                              int64_t now_ms) {
  RTENV_TRY(Stmt(db_, "INSERT OR IGNORE INTO refs(env_id, holder, created_ms) VALUES(?1, ?2, ?3)")
                .bind(1, env_id)
                .bind(2, holder)
                .bind(3, now_ms)
                .run());
  return sqlite3_changes(db_) > 0;
}

Result<bool> StateDb::remove_ref(const std::string& env_id, const std::string& holder) {
  RTENV_TRY(Stmt(db_, "DELETE FROM refs WHERE env_id = ?1 AND holder = ?2")
                .bind(1, env_id)
                .bind(2, holder)
                .run());
  return sqlite3_changes(db_) > 0;
}

Result<uint32_t> StateDb::remove_holder(const std::string& holder) {
  RTENV_TRY(Stmt(db_, "DELETE FROM refs WHERE holder = ?1").bind(1, holder).run());
  return static_cast<uint32_t>(sqlite3_changes(db_));
}

Result<std::vector<std::string>> StateDb::holders_with_prefix(const std::string& prefix) {
  Stmt q(db_, "SELECT DISTINCT holder FROM refs WHERE substr(holder, 1, length(?1)) = ?1");
  q.bind(1, prefix);
  std::vector<std::string> out;
  int rc;
  while ((rc = q.step()) == SQLITE_ROW) out.push_back(q.text(0));
  if (rc != SQLITE_DONE) return q.error();
  return out;
}

Result<std::vector<EnvRow>> StateDb::envs() {
  std::vector<EnvRow> out;
  std::map<std::string, size_t> by_id;
  {
    Stmt q(db_,
           "SELECT env_id, job_id, state, error, summary, timings, created_ms, last_used_ms "
           "FROM envs ORDER BY created_ms, env_id");
    int rc;
    while ((rc = q.step()) == SQLITE_ROW) {
      EnvRow r;
      r.env_id = q.text(0);
      r.job_id = q.text(1);
      r.state = q.text(2);
      r.error = q.text(3);
      r.summary = q.text(4);
      r.timings = q.text(5);
      r.created_ms = q.integer(6);
      r.last_used_ms = q.integer(7);
      by_id[r.env_id] = out.size();
      out.push_back(std::move(r));
    }
    if (rc != SQLITE_DONE) return q.error();
  }
  Stmt refs(db_, "SELECT env_id, holder FROM refs ORDER BY holder");
  while (refs.step() == SQLITE_ROW) {
    if (auto it = by_id.find(refs.text(0)); it != by_id.end())
      out[it->second].holders.push_back(refs.text(1));
  }
  Stmt res(db_, "SELECT env_id, uri FROM env_resources ORDER BY uri");
  while (res.step() == SQLITE_ROW) {
    if (auto it = by_id.find(res.text(0)); it != by_id.end())
      out[it->second].resources.push_back(res.text(1));
  }
  return out;
}

Result<std::vector<ResourceRow>> StateDb::resources() {
  Stmt q(db_,
         "SELECT r.uri, r.kind, r.size_bytes, r.created_ms, r.last_used_ms, "
         "(SELECT COUNT(DISTINCT er.env_id) FROM env_resources er JOIN refs f ON f.env_id = "
         "er.env_id WHERE er.uri = r.uri) FROM resources r ORDER BY r.uri");
  std::vector<ResourceRow> out;
  int rc;
  while ((rc = q.step()) == SQLITE_ROW) {
    out.push_back({q.text(0), q.text(1), static_cast<uint64_t>(q.integer(2)), q.integer(3),
                   q.integer(4), static_cast<uint32_t>(q.integer(5))});
  }
  if (rc != SQLITE_DONE) return q.error();
  return out;
}

Result<StateCounts> StateDb::counts() {
  StateCounts out;
  {
    Stmt q(db_, "SELECT COUNT(*), COUNT(DISTINCT holder) FROM refs");
    if (q.step() != SQLITE_ROW) return q.error();
    out.references = static_cast<uint64_t>(q.integer(0));
    out.holders = static_cast<uint64_t>(q.integer(1));
  }
  int rc;
  {
    Stmt q(db_, "SELECT state, COUNT(*) FROM envs GROUP BY state");
    while ((rc = q.step()) == SQLITE_ROW) {
      out.envs_by_state[q.text(0)] = static_cast<uint64_t>(q.integer(1));
    }
    if (rc != SQLITE_DONE) return q.error();
  }
  Stmt q(db_, "SELECT kind, uri, size_bytes FROM resources");
  while ((rc = q.step()) == SQLITE_ROW) {
    out.resources.push_back({q.text(0), q.text(1), static_cast<uint64_t>(q.integer(2))});
  }
  if (rc != SQLITE_DONE) return q.error();
  return out;
}

Result<void> StateDb::forget_resource(const std::string& uri) {
  RTENV_TRY(Stmt(db_,
                 "DELETE FROM envs WHERE env_id IN (SELECT env_id FROM env_resources WHERE uri = "
                 "?1) AND env_id NOT IN (SELECT env_id FROM refs)")
                .bind(1, uri)
                .run());
  RTENV_TRY(
      Stmt(db_, "DELETE FROM env_resources WHERE env_id NOT IN (SELECT env_id FROM envs)").run());
  RTENV_TRY(Stmt(db_, "DELETE FROM env_resources WHERE uri = ?1").bind(1, uri).run());
  return Stmt(db_, "DELETE FROM resources WHERE uri = ?1").bind(1, uri).run();
}

Result<void> StateDb::fail_interrupted(int64_t now_ms) {
  return Stmt(db_,
              "UPDATE envs SET state = 'failed', error = 'setup was interrupted (the agent "
              "stopped); it is retried on the next request', last_used_ms = ?1 WHERE state = "
              "'creating'")
      .bind(1, now_ms)
      .run();
}

}  // namespace rtenv::agent
