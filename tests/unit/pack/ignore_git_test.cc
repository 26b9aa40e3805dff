// Differential test: IgnoreRules/IgnoreStack against git itself, on random trees with random
// .gitignore files and random `excludes` lists.

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "pack/ignore.h"

namespace rtenv::pack {
namespace {

namespace fs = std::filesystem;
using Tier = IgnoreStack::Tier;

// splitmix64: deterministic on every platform (unlike std:: distributions).
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed * 0x9E3779B97F4A7C15ull + 12345) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  /// Uniform in [0, n).
  size_t below(size_t n) { return static_cast<size_t>(next() % n); }
  /// True with probability percent/100.
  bool chance(int percent) { return below(100) < static_cast<size_t>(percent); }
  char pick(std::string_view chars) { return chars[below(chars.size())]; }

 private:
  uint64_t state_;
};

// ---------------------------------------------------------------------------------------------
// The running git.

struct GitVersion {
  int major = 0, minor = 0;
  bool at_least(int ma, int mi) const { return major > ma || (major == ma && minor >= mi); }
};

/// Runs git with `args` in `cwd`, stdin from `in_file`, stdout to `out_file`, isolated from the
/// user's and system's configuration. Returns the exit status, or -1 if it could not run.
int run_git(const fs::path& cwd, const std::vector<std::string>& args, const fs::path& in_file,
            const fs::path& out_file, const fs::path& home) {
  pid_t pid = ::fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    if (::chdir(cwd.c_str()) != 0) ::_exit(126);
    int in = ::open(in_file.c_str(), O_RDONLY);
    int out = ::open(out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = ::open((out_file.string() + ".err").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (in < 0 || out < 0 || err < 0) ::_exit(126);
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(err, 2);
    for (const char* var : {"GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
                            "GIT_CEILING_DIRECTORIES", "GIT_LITERAL_PATHSPECS",
                            "GIT_GLOB_PATHSPECS", "GIT_NOGLOB_PATHSPECS", "GIT_ICASE_PATHSPECS",
                            "GIT_CONFIG_PARAMETERS", "GIT_CONFIG_COUNT", "GIT_TEMPLATE_DIR"}) {
      ::unsetenv(var);
    }
    ::setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
    ::setenv("GIT_CONFIG_GLOBAL", "/dev/null", 1);
    ::setenv("HOME", home.c_str(), 1);
    ::setenv("XDG_CONFIG_HOME", home.c_str(), 1);
    std::vector<char*> argv;
    std::string git = "git";
    argv.push_back(git.data());
    std::vector<std::string> copy = args;
    for (std::string& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execvp("git", argv.data());
    ::_exit(127);
  }
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_all(const fs::path& p, std::string_view data) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
}

std::set<std::string> split_nul(std::string_view s) {
  std::set<std::string> out;
  while (!s.empty()) {
    size_t z = s.find('\0');
    out.emplace(s.substr(0, z));
    if (z == std::string_view::npos) break;
    s.remove_prefix(z + 1);
  }
  return out;
}

// A C-style quoted rendering, for failure messages.
std::string shown(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// ---------------------------------------------------------------------------------------------
// Random trees and patterns.

struct Entry {
  std::string path;
  bool is_dir;
};

struct Tree {
  std::vector<Entry> entries;                           // parents before children
  std::map<std::string, std::vector<size_t>> children;  // directory -> indices into entries
  std::map<std::string, std::string> gitignores;        // directory -> .gitignore text
  std::vector<std::string> excludes;
};

std::string join(const std::string& dir, std::string_view name) {
  return dir.empty() ? std::string(name) : dir + "/" + std::string(name);
}

// Names: mostly "abc", some upper case, and characters that are special in patterns.
constexpr std::string_view kSpecialNameChars = ".- #!*?[]\\";

std::string random_name(Rng& rng) {
  std::string name;
  size_t len = 1 + rng.below(3);
  for (size_t i = 0; i < len; i++) {
    int r = static_cast<int>(rng.below(100));
    name += r < 80 ? rng.pick("abc") : r < 85 ? 'A' : rng.pick(kSpecialNameChars);
  }
  return name;
}

void generate_dir(Tree& tree, Rng& rng, const std::string& dir, int depth) {
  std::set<std::string> used;
  size_t n = 1 + rng.below(depth == 0 ? 7 : 5);
  tree.children[dir];
  for (size_t i = 0; i < n; i++) {
    std::string name = random_name(rng);
    if (name == "." || name == ".." || !used.insert(name).second) continue;
    bool is_dir = depth < 4 && rng.chance(depth == 0 ? 55 : 40);
    std::string path = join(dir, name);
    tree.children[dir].push_back(tree.entries.size());
    tree.entries.push_back({path, is_dir});
    if (is_dir) generate_dir(tree, rng, path, depth + 1);
  }
}

bool is_pattern_special(char c) { return c == '*' || c == '?' || c == '[' || c == '\\'; }

// One class "[...]", well-formed or (rarely) not.
std::string random_class(Rng& rng, char must_contain) {
  std::string s = "[";
  if (rng.chance(15))
    s += '!';
  else if (rng.chance(10))
    s += '^';
  if (rng.chance(8)) s += ']';
  if (must_contain) {
    if (must_contain == ']' || must_contain == '\\' || must_contain == '[' || rng.chance(10)) {
      s += '\\';
    }
    s += must_contain;
  }
  size_t items = rng.below(3);
  for (size_t i = 0; i < items; i++) {
    int r = static_cast<int>(rng.below(100));
    if (r < 35) {
      s += rng.pick("abcA.-# !*?");
    } else if (r < 60) {
      s += rng.pick("aAb!-");
      s += '-';
      s += rng.pick("bcBz\\");
      if (s.back() == '\\') s += ']';
    } else if (r < 75) {
      static constexpr std::string_view kNames[] = {"alpha", "digit", "upper", "lower",
                                                    "punct", "space", "alnum", "xdigit",
                                                    "graph", "print", "blank", "cntrl"};
      s += "[:" + std::string(kNames[rng.below(12)]) + ":]";
    } else if (r < 78) {
      s += "[:bogus:]";
    } else if (r < 82) {
      s += "[:a";
    } else if (r < 90) {
      s += '\\';
      s += rng.pick("]-\\a[");
    } else {
      s += '-';
    }
  }
  if (!rng.chance(4)) s += ']';
  return s;
}

// One path component of a pattern, made up.
std::string random_component(Rng& rng) {
  int r = static_cast<int>(rng.below(100));
  if (r < 8) return "**";
  if (r < 14) return "*";
  std::string s;
  size_t tokens = 1 + rng.below(4);
  for (size_t i = 0; i < tokens; i++) {
    int t = static_cast<int>(rng.below(100));
    if (t < 45) {
      char c = rng.chance(85) ? rng.pick("abcA") : rng.pick(kSpecialNameChars);
      if (is_pattern_special(c) && rng.chance(60)) s += '\\';
      s += c;
    } else if (t < 57) {
      s += '?';
    } else if (t < 72) {
      s += '*';
    } else if (t < 77) {
      s += "**";
    } else if (t < 80) {
      s += "***";
    } else if (t < 93) {
      s += random_class(rng, 0);
    } else {
      s += '\\';
      s += rng.pick("abc #!*?[]\\-");
    }
  }
  return s;
}

// A pattern for one name of the tree: the name itself, escaped or partly turned into wildcards.
std::string globify(Rng& rng, std::string_view name) {
  int whole = static_cast<int>(rng.below(100));
  if (whole < 5) return "*";
  if (whole < 8) return "**";
  std::string s;
  for (size_t i = 0; i < name.size(); i++) {
    char c = name[i];
    int r = static_cast<int>(rng.below(100));
    if (r < 10) {
      s += '?';
    } else if (r < 17) {
      s += random_class(rng, c);
    } else if (r < 22 && i + 1 < name.size()) {
      s += '*';
      i += rng.below(name.size() - i - 1);  // the star covers some characters
    } else {
      bool escape = is_pattern_special(c)                ? rng.chance(85)
                    : (c == '#' || c == '!' || c == ' ') ? rng.chance(60)
                                                         : rng.chance(3);
      if (escape) s += '\\';
      s += c;
    }
  }
  if (rng.chance(10)) s = "*" + s;
  if (rng.chance(10)) s += "*";
  return s;
}

// A pattern derived from an entry below `dir`, so that it is likely to match something.
std::string derived_pattern(Rng& rng, const Tree& tree, const std::string& dir) {
  std::vector<const Entry*> below;
  for (const Entry& e : tree.entries) {
    if (dir.empty() || (e.path.size() > dir.size() && e.path.compare(0, dir.size(), dir) == 0 &&
                        e.path[dir.size()] == '/')) {
      below.push_back(&e);
    }
  }
  if (below.empty()) return random_component(rng);
  const Entry& e = *below[rng.below(below.size())];
  std::string rel = dir.empty() ? e.path : e.path.substr(dir.size() + 1);
  std::vector<std::string> parts;
  for (size_t start = 0;;) {
    size_t slash = rel.find('/', start);
    parts.push_back(rel.substr(start, slash - start));
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  std::string s;
  int mode = static_cast<int>(rng.below(100));
  if (mode < 35 || parts.size() == 1) {
    // The last component alone: matches at any depth (or anchored, sometimes).
    if (rng.chance(15)) s = "/";
    s += globify(rng, parts.back());
  } else if (mode < 70) {
    // The whole path: anchored by its inner slash. Sometimes a wildcard stands where the path
    // has a slash (then a leading slash keeps the pattern anchored).
    bool anchored = rng.chance(30);
    for (size_t i = 0; i < parts.size(); i++) {
      if (i && rng.chance(12)) {
        static constexpr std::string_view kForSlash[] = {"?",    "*",  "[/]",         "[!a]",
                                                         "[^/]", "**", "[[:punct:]]", "\\/"};
        s += kForSlash[rng.below(8)];
        anchored = true;
      } else if (i) {
        s += "/";
      }
      s += globify(rng, parts[i]);
    }
    if (anchored) s = "/" + s;
  } else if (mode < 80) {
    // "**/" and a tail of the path.
    size_t from = 1 + rng.below(parts.size() - 1);
    s = "**";
    for (size_t i = from; i < parts.size(); i++) s += "/" + globify(rng, parts[i]);
  } else if (mode < 90) {
    // A head of the path and "/**".
    size_t to = 1 + rng.below(parts.size() - 1);
    for (size_t i = 0; i < to; i++) s += (i ? "/" : "") + globify(rng, parts[i]);
    s += rng.chance(80) ? "/**" : "/***";
  } else {
    // "/**/" in the middle.
    size_t at = rng.below(parts.size() - 1);
    for (size_t i = 0; i < parts.size(); i++) {
      if (i) s += "/";
      s +=
          (i == at + 1 && rng.chance(50)) ? "**/" + globify(rng, parts[i]) : globify(rng, parts[i]);
      if (i == at && rng.chance(50)) s += "/**";
    }
  }
  if (e.is_dir ? rng.chance(35) : rng.chance(8)) s += "/";
  return s;
}

std::string made_up_pattern(Rng& rng) {
  std::string s;
  if (rng.chance(15))
    s = "/";
  else if (rng.chance(10))
    s = "**/";
  size_t n = 1 + rng.below(3);
  for (size_t i = 0; i < n; i++) s += (i ? "/" : "") + random_component(rng);
  if (rng.chance(8)) s += "/**";
  if (rng.chance(20)) s += "/";
  return s;
}

// One line of a .gitignore file: blank, comment, or a pattern with optional negation,
// escapes and trailing-space decorations.
std::string random_line(Rng& rng, const Tree& tree, const std::string& dir) {
  int r = static_cast<int>(rng.below(100));
  if (r < 3) return "";
  if (r < 5) return "   ";
  if (r < 9) return "#" + random_component(rng);
  std::string s;
  if (rng.chance(22)) s = "!";
  std::string body = rng.chance(60) ? derived_pattern(rng, tree, dir) : made_up_pattern(rng);
  if (rng.chance(4)) body = "\\#" + body;
  if (rng.chance(4)) body = "\\!" + body;
  s += body;
  int t = static_cast<int>(rng.below(100));
  if (t < 7)
    s += " ";
  else if (t < 10)
    s += "  ";
  else if (t < 13)
    s += "\\ ";
  else if (t < 15)
    s += "\\  ";
  else if (t < 17)
    s += "\r";
  else if (t < 18)
    s += "\\";
  else if (t < 19)
    s += "\t";
  return s;
}

// Drops trailing spaces not escaped by a backslash, for the old-git filter below.
void trim_trailing_spaces(std::string& s) {
  size_t keep = s.size();
  while (keep > 0 && s[keep - 1] == ' ') {
    size_t backslashes = 0;
    for (size_t j = keep - 1; j > 0 && s[j - 1] == '\\'; --j) ++backslashes;
    if (backslashes % 2 == 1) break;
    --keep;
  }
  s.resize(keep);
}

// True if git before 2.52 may disagree with the documented meaning of `line`: a pattern with a
// slash whose literal prefix ends in a character other than '/' right before "**" that is
// followed by '/' or the end (git's old match_pathname() cut the prefix off and wildmatch then
// took "**" as a leading "**"). See git commit 1940a02dc1 "match_pathname(): give fnmatch one
// char of prefix context".
bool old_git_differs(std::string line) {
  if (line.empty() || line[0] == '#') return false;
  if (line.back() == '\r') line.pop_back();
  trim_trailing_spaces(line);
  std::string_view p = line;
  if (!p.empty() && p[0] == '!') p.remove_prefix(1);
  size_t len = p.size();
  if (len && p[len - 1] == '/') len--;
  size_t nowildcard = 0;
  while (nowildcard < p.size() && !is_pattern_special(p[nowildcard])) nowildcard++;
  nowildcard = std::min(nowildcard, len);
  p = p.substr(0, len);
  if (p.find('/') == std::string_view::npos) return false;
  if (p[0] == '/') {
    p.remove_prefix(1);
    nowildcard--;
  }
  if (nowildcard == 0 || p[nowildcard - 1] == '/') return false;
  if (nowildcard + 1 >= p.size() || p[nowildcard] != '*' || p[nowildcard + 1] != '*') {
    return false;
  }
  size_t after = nowildcard;
  while (after < p.size() && p[after] == '*') after++;
  return after == p.size() || p[after] == '/' ||
         (p[after] == '\\' && after + 1 < p.size() && p[after + 1] == '/');
}

Tree random_tree(uint64_t seed, bool old_git, int* avoided) {
  Rng rng(seed);
  Tree tree;
  generate_dir(tree, rng, "", 0);
  auto line_for = [&](const std::string& dir) {
    for (;;) {
      std::string line = random_line(rng, tree, dir);
      if (!old_git || !old_git_differs(line)) return line;
      ++*avoided;
    }
  };
  std::vector<std::string> dirs = {""};
  for (const Entry& e : tree.entries) {
    if (e.is_dir) dirs.push_back(e.path);
  }
  for (const std::string& dir : dirs) {
    if (!rng.chance(dir.empty() ? 85 : 35)) continue;
    std::string text;
    size_t lines = 1 + rng.below(8);
    for (size_t i = 0; i < lines; i++) {
      text += line_for(dir);
      if (i + 1 < lines || rng.chance(80)) text += "\n";
    }
    tree.gitignores[dir] = text;
  }
  // The .gitignore files are entries too (and can be ignored themselves).
  for (const auto& [dir, text] : tree.gitignores) {
    tree.children[dir].push_back(tree.entries.size());
    tree.entries.push_back({join(dir, ".gitignore"), false});
  }
  // `git ls-files -x` takes its argument as a pattern as is, while an `excludes` element is a
  // line (comments, trailing spaces): keep to the lines on which both agree.
  if (rng.chance(50)) {
    size_t n = 1 + rng.below(4);
    while (tree.excludes.size() < n) {
      std::string line = line_for("");
      if (line.empty() || line[0] == '#' || line.back() == ' ' || line.back() == '\r') continue;
      tree.excludes.push_back(line);
    }
  }
  return tree;
}

// ---------------------------------------------------------------------------------------------
// The walk, as the real walker does it.

void add_with_descendants(const Tree& tree, const Entry& e, std::set<std::string>* out) {
  out->insert(e.path);
  if (!e.is_dir) return;
  for (size_t i : tree.children.at(e.path)) add_with_descendants(tree, tree.entries[i], out);
}

void walk(const Tree& tree, const std::string& dir, IgnoreStack* stack,
          std::deque<IgnoreRules>* storage, std::set<std::string>* ignored) {
  bool pushed = false;
  if (auto it = tree.gitignores.find(dir); it != tree.gitignores.end()) {
    storage->emplace_back(dir, it->second);
    stack->push(&storage->back(), Tier::kGitignore);
    pushed = true;
  }
  for (size_t i : tree.children.at(dir)) {
    const Entry& e = tree.entries[i];
    if (stack->ignored(e.path, e.is_dir)) {
      add_with_descendants(tree, e, ignored);
    } else if (e.is_dir) {
      walk(tree, e.path, stack, storage, ignored);
    }
  }
  if (pushed) stack->pop(Tier::kGitignore);
}

/// All paths (files and directories) the walk skips, or that are below one it skips.
std::set<std::string> walk_ignored(const Tree& tree, bool with_excludes) {
  IgnoreStack stack;
  std::deque<IgnoreRules> storage;
  std::set<std::string> ignored;
  if (with_excludes && !tree.excludes.empty()) {
    storage.emplace_back("", tree.excludes);
    stack.push(&storage.back(), Tier::kOverride);
  }
  walk(tree, "", &stack, &storage, &ignored);
  EXPECT_EQ(stack.size(Tier::kGitignore), 0u);
  return ignored;
}

std::string describe(const Tree& tree) {
  std::string s = "entries:\n";
  for (const Entry& e : tree.entries) s += "  " + shown(e.path) + (e.is_dir ? " (dir)\n" : "\n");
  for (const auto& [dir, text] : tree.gitignores) {
    s += "gitignore in " + shown(dir) + ": " + shown(text) + "\n";
  }
  for (const std::string& x : tree.excludes) s += "exclude: " + shown(x) + "\n";
  return s;
}

std::string difference(const std::set<std::string>& git, const std::set<std::string>& ours) {
  std::string s;
  for (const std::string& p : git) {
    if (!ours.count(p)) s += "  only git ignores " + shown(p) + "\n";
  }
  for (const std::string& p : ours) {
    if (!git.count(p)) s += "  only we ignore " + shown(p) + "\n";
  }
  return s;
}

class IgnoreGitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/rtenv-ignore-git-XXXXXX";
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/rtenv-ignore-git-XXXXXX";
    std::vector<char> buf(pattern.begin(), pattern.end());
    buf.push_back('\0');
    char* made = ::mkdtemp(buf.data());
    if (!made) made = ::mkdtemp(tmpl);
    ASSERT_NE(made, nullptr);
    work_ = made;
    fs::create_directories(work_ / "home");
    write_all(work_ / "empty", "");
    int rc = run_git(work_, {"--version"}, work_ / "empty", work_ / "version", work_ / "home");
    ASSERT_EQ(rc, 0) << "git is needed for this test (scripts/setup.sh installs it)";
    std::string v = read_all(work_ / "version");  // "git version 2.39.5\n"
    if (std::sscanf(v.c_str(), "git version %d.%d", &version_.major, &version_.minor) != 2) {
      FAIL() << "cannot parse the git version from " << v;
    }
  }
  void TearDown() override {
    std::error_code ec;
    if (!work_.empty()) fs::remove_all(work_, ec);
  }

  fs::path work_;
  GitVersion version_;
};

TEST_F(IgnoreGitTest, RandomTreesAgreeWithGit) {
  int seeds = 200;
  if (const char* env = std::getenv("RTENV_IGNORE_GIT_SEEDS")) seeds = std::atoi(env);
  const bool old_git = !version_.at_least(2, 52);
  const fs::path home = work_ / "home";

  int agreed = 0, failures_shown = 0, avoided = 0;
  size_t paths = 0, ignored_paths = 0, files = 0, ignored_files = 0, excluded_trees = 0;
  size_t patterns = 0;
  for (int seed = 0; seed < seeds; seed++) {
    Tree tree = random_tree(static_cast<uint64_t>(seed), old_git, &avoided);
    excluded_trees += !tree.excludes.empty();
    for (const auto& [dir, text] : tree.gitignores) {
      patterns += static_cast<size_t>(std::count(text.begin(), text.end(), '\n')) + 1;
    }

    fs::path repo = work_ / ("t" + std::to_string(seed));
    fs::create_directories(repo);
    for (const Entry& e : tree.entries) {
      if (e.is_dir) {
        fs::create_directory(repo / e.path);
      } else {
        auto dir_end = e.path.rfind('/');
        std::string dir = dir_end == std::string::npos ? "" : e.path.substr(0, dir_end);
        auto it = tree.gitignores.find(dir);
        bool is_gitignore = e.path == join(dir, ".gitignore") && it != tree.gitignores.end();
        write_all(repo / e.path, is_gitignore ? it->second : "");
      }
    }
    ASSERT_EQ(run_git(repo, {"init", "-q", "--template="}, work_ / "empty", work_ / "out", home),
              0);

    // 1. check-ignore on every path: a path below an ignored directory is reported too.
    std::string input;
    for (const Entry& e : tree.entries) input += e.path + '\0';
    write_all(work_ / "in", input);
    int rc = run_git(repo,
                     {"-c", "core.ignorecase=false", "check-ignore", "--no-index", "--stdin", "-z"},
                     work_ / "in", work_ / "out", home);
    ASSERT_TRUE(rc == 0 || rc == 1)
        << "git check-ignore failed (" << rc << "): " << read_all(work_ / "out.err");
    std::set<std::string> git_ignored = split_nul(read_all(work_ / "out"));
    std::set<std::string> ours = walk_ignored(tree, false);

    // 2. ls-files lists the ignored files (also those in ignored directories), with the
    // `excludes` list as -x patterns, which take precedence over every .gitignore.
    std::vector<std::string> ls = {
        "-c",        "core.ignorecase=false", "ls-files", "-z", "--others",
        "--ignored", "--exclude-standard"};
    for (const std::string& x : tree.excludes) {
      ls.push_back("-x");
      ls.push_back(x);
    }
    rc = run_git(repo, ls, work_ / "empty", work_ / "out", home);
    ASSERT_EQ(rc, 0) << "git ls-files failed: " << read_all(work_ / "out.err");
    std::set<std::string> git_files = split_nul(read_all(work_ / "out"));
    std::set<std::string> ours_files;
    for (const std::string& p : walk_ignored(tree, true)) {
      auto e = std::find_if(tree.entries.begin(), tree.entries.end(),
                            [&](const Entry& x) { return x.path == p; });
      if (!e->is_dir) ours_files.insert(p);
    }

    paths += tree.entries.size();
    ignored_paths += git_ignored.size();
    for (const Entry& e : tree.entries) files += !e.is_dir;
    ignored_files += git_files.size();
    if (git_ignored == ours && git_files == ours_files) {
      agreed++;
    } else if (failures_shown++ < 3) {
      ADD_FAILURE() << "seed " << seed << ": the matcher disagrees with git\n"
                    << describe(tree) << "check-ignore (.gitignore files only):\n"
                    << difference(git_ignored, ours) << "ls-files (with excludes):\n"
                    << difference(git_files, ours_files);
    }
    std::error_code ec;
    fs::remove_all(repo, ec);
  }
  std::printf(
      "[   INFO   ] git %d.%d: %d of %d random trees agree (%zu paths, %zu ignored; %zu files, "
      "%zu ignored with excludes; %zu .gitignore lines; %zu trees with excludes; %d patterns "
      "avoided for git < 2.52)\n",
      version_.major, version_.minor, agreed, seeds, paths, ignored_paths, files, ignored_files,
      patterns, excluded_trees, avoided);
  EXPECT_EQ(agreed, seeds);
  // The generator must produce trees where ignoring matters, or the comparison proves little.
  EXPECT_GT(ignored_paths, paths / 5);
  EXPECT_LT(ignored_paths, paths * 4 / 5);
}

}  // namespace
}  // namespace rtenv::pack
