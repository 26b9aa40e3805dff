#include "pack/ignore.h"

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace rtenv::pack {
namespace {

using Verdict = IgnoreRules::Verdict;
using Tier = IgnoreStack::Tier;
constexpr Verdict kNone = Verdict::kNone;
constexpr Verdict kIgnore = Verdict::kIgnore;
constexpr Verdict kInclude = Verdict::kInclude;

// The verdict of the rules `text` (a whole ignore file, base "") for a file `path`.
Verdict file(std::string_view text, std::string_view path) {
  return IgnoreRules("", text).match(path, false);
}
// The same for a directory.
Verdict dir(std::string_view text, std::string_view path) {
  return IgnoreRules("", text).match(path, true);
}

TEST(IgnoreRulesTest, BlankLinesAndCommentsAreNotPatterns) {
  EXPECT_TRUE(IgnoreRules("", "").empty());
  EXPECT_TRUE(IgnoreRules("", "\n\n# comment\n#\n\r\n").empty());
  EXPECT_TRUE(IgnoreRules("", std::vector<std::string>{"", "# x"}).empty());
  EXPECT_FALSE(IgnoreRules("", "# c\nfoo\n").empty());
  EXPECT_EQ(file("#foo\n", "#foo"), kNone);
  EXPECT_EQ(file(" #foo\n", " #foo"), kIgnore);  // '#' only starts a comment in column 1
  EXPECT_EQ(file("a # not a comment\n", "a # not a comment"), kIgnore);
}

TEST(IgnoreRulesTest, BackslashEscapesHashAndBang) {
  EXPECT_EQ(file("\\#foo\n", "#foo"), kIgnore);
  EXPECT_EQ(file("\\!foo\n", "!foo"), kIgnore);
  EXPECT_EQ(file("\\!foo\n", "foo"), kNone);
  EXPECT_EQ(file("*\n\\!foo\n", "foo"), kIgnore);  // not a negation
  EXPECT_EQ(file("!!foo\n", "!foo"), kInclude);    // one '!' negates, the next is literal
}

TEST(IgnoreRulesTest, TrailingSpacesAreDroppedUnlessEscaped) {
  EXPECT_EQ(file("foo   \n", "foo"), kIgnore);
  EXPECT_EQ(file("foo   \n", "foo "), kNone);
  EXPECT_EQ(file("foo\\ \n", "foo "), kIgnore);
  EXPECT_EQ(file("foo\\ \n", "foo"), kNone);
  EXPECT_EQ(file("foo\\  \n", "foo "), kIgnore);  // escaped space kept, the next one dropped
  EXPECT_EQ(file("foo \\ \n", "foo  "), kIgnore);
  EXPECT_EQ(file("foo\t\n", "foo\t"), kIgnore);  // only spaces are trimmed, not tabs
  EXPECT_EQ(file("foo\t\n", "foo"), kNone);
  EXPECT_EQ(file(" foo\n", " foo"), kIgnore);  // leading spaces are part of the pattern
  EXPECT_EQ(file(" foo\n", "foo"), kNone);
  EXPECT_TRUE(IgnoreRules("", "   \n").empty());
}

TEST(IgnoreRulesTest, LineEndingsAndByteOrderMark) {
  const char* text =
      "\xEF\xBB\xBF"
      "foo\r\nbar\r\nbaz";  // no final newline
  EXPECT_EQ(file(text, "foo"), kIgnore);
  EXPECT_EQ(file(text, "bar"), kIgnore);
  EXPECT_EQ(file(text, "baz"), kIgnore);
  EXPECT_EQ(file("foo\r\r\n", "foo\r"), kIgnore);  // only one '\r' belongs to the line end
  EXPECT_EQ(file("\xEF\xBB\xBF#c\n", "#c"), kNone);
  EXPECT_EQ(file("x\n\xEF\xBB\xBF"
                 "foo\n",
                 "foo"),
            kNone);  // a BOM only counts at the start
}

TEST(IgnoreRulesTest, NegationAndLastMatchWins) {
  EXPECT_EQ(file("*.c\n!keep.c\n", "keep.c"), kInclude);
  EXPECT_EQ(file("*.c\n!keep.c\n", "other.c"), kIgnore);
  EXPECT_EQ(file("!keep.c\n*.c\n", "keep.c"), kIgnore);
  EXPECT_EQ(file("!keep.c\n", "keep.c"), kInclude);
  EXPECT_EQ(file("!keep.c\n", "other.c"), kNone);
  EXPECT_EQ(file("a\n!a\na\n", "a"), kIgnore);
  EXPECT_EQ(dir("build/\n!build\n", "build"), kInclude);
  EXPECT_EQ(dir("build\n!build/\n", "build"), kInclude);
  EXPECT_EQ(file("build\n!build/\n", "build"), kIgnore);  // "!build/" does not apply to files
}

TEST(IgnoreRulesTest, PatternWithoutSlashMatchesAtAnyDepth) {
  EXPECT_EQ(file("foo\n", "foo"), kIgnore);
  EXPECT_EQ(file("foo\n", "a/b/foo"), kIgnore);
  EXPECT_EQ(file("foo\n", "a/foo/b"), kNone);  // only the last component is matched
  EXPECT_EQ(file("foo\n", "foobar"), kNone);
  EXPECT_EQ(file("foo\n", "Foo"), kNone);  // case-sensitive
  EXPECT_EQ(dir("foo\n", "a/foo"), kIgnore);
}

TEST(IgnoreRulesTest, SlashAtStartOrInMiddleAnchors) {
  EXPECT_EQ(file("/foo\n", "foo"), kIgnore);
  EXPECT_EQ(file("/foo\n", "a/foo"), kNone);
  EXPECT_EQ(file("a/foo\n", "a/foo"), kIgnore);
  EXPECT_EQ(file("a/foo\n", "b/a/foo"), kNone);
  EXPECT_EQ(file("/a/foo\n", "a/foo"), kIgnore);
  EXPECT_EQ(file("a/*.c\n", "a/x.c"), kIgnore);
  EXPECT_EQ(file("a/*.c\n", "a/b/x.c"), kNone);
  EXPECT_EQ(file("//foo\n", "foo"), kNone);  // only one leading slash is special
  EXPECT_EQ(file("a//b\n", "a/b"), kNone);
}

TEST(IgnoreRulesTest, TrailingSlashMatchesDirectoriesOnly) {
  EXPECT_EQ(dir("foo/\n", "foo"), kIgnore);
  EXPECT_EQ(dir("foo/\n", "a/foo"), kIgnore);
  EXPECT_EQ(file("foo/\n", "foo"), kNone);
  EXPECT_EQ(dir("/foo/\n", "a/foo"), kNone);
  EXPECT_EQ(dir("a/foo/\n", "a/foo"), kIgnore);
  EXPECT_EQ(file("a/foo/\n", "a/foo"), kNone);
  EXPECT_EQ(dir("*.d/\n", "x/y.d"), kIgnore);
  EXPECT_TRUE(IgnoreRules("", "/\n!\n").empty());
}

TEST(IgnoreRulesTest, PathsAreRelativeToBase) {
  IgnoreRules rules("a/b", "foo\n/bar\nx/y\n*.o\n");
  EXPECT_EQ(rules.match("a/b/foo", false), kIgnore);
  EXPECT_EQ(rules.match("a/b/c/foo", false), kIgnore);
  EXPECT_EQ(rules.match("a/b/bar", false), kIgnore);
  EXPECT_EQ(rules.match("a/b/c/bar", false), kNone);
  EXPECT_EQ(rules.match("a/b/x/y", false), kIgnore);
  EXPECT_EQ(rules.match("a/b/c/x/y", false), kNone);
  EXPECT_EQ(rules.match("a/b/k.o", false), kIgnore);
  // Not below the base: no verdict, even where a pattern would match the name.
  EXPECT_EQ(rules.match("a/foo", false), kNone);
  EXPECT_EQ(rules.match("foo", false), kNone);
  EXPECT_EQ(rules.match("a/bx/foo", false), kNone);
  EXPECT_EQ(rules.match("a/b", true), kNone);
  EXPECT_EQ(rules.match("x.o", false), kNone);
  // The root's rules see every path but not the empty one.
  EXPECT_EQ(IgnoreRules("", "*\n").match("", true), kNone);
  EXPECT_EQ(IgnoreRules("a/", "b\n").match("a/b", false), kIgnore);  // a trailing '/' is fine
}

TEST(IgnoreRulesTest, StarAndQuestionMarkDoNotMatchSlash) {
  EXPECT_EQ(file("*.c\n", "x.c"), kIgnore);
  EXPECT_EQ(file("*.c\n", ".c"), kIgnore);
  EXPECT_EQ(file("*.c\n", "d/x.c"), kIgnore);
  EXPECT_EQ(file("*.c\n", "x.cc"), kNone);
  EXPECT_EQ(file("*\n", "anything"), kIgnore);
  EXPECT_EQ(file("?.c\n", "x.c"), kIgnore);
  EXPECT_EQ(file("?.c\n", "xy.c"), kNone);
  EXPECT_EQ(file("a*b*c\n", "aXbYc"), kIgnore);
  EXPECT_EQ(file("a*b*c\n", "aXbY"), kNone);
  EXPECT_EQ(file("x/a*c\n", "x/abc"), kIgnore);
  EXPECT_EQ(file("x/a*c\n", "x/a/c"), kNone);
  EXPECT_EQ(file("x/a?c\n", "x/a/c"), kNone);
  EXPECT_EQ(file("x/*\n", "x/y"), kIgnore);
  EXPECT_EQ(file("x/*\n", "x/y/z"), kNone);
  EXPECT_EQ(file("*/y\n", "x/y"), kIgnore);
  EXPECT_EQ(file("*/y\n", "a/x/y"), kNone);
  EXPECT_EQ(file("x/*/z\n", "x/y/z"), kIgnore);
  EXPECT_EQ(file("x/*/z\n", "x/z"), kNone);
  EXPECT_EQ(file("x/*/z\n", "x/a/b/z"), kNone);
}

TEST(IgnoreRulesTest, BracketClasses) {
  EXPECT_EQ(file("[abc].txt\n", "b.txt"), kIgnore);
  EXPECT_EQ(file("[abc].txt\n", "d.txt"), kNone);
  EXPECT_EQ(file("[a-c]x\n", "bx"), kIgnore);
  EXPECT_EQ(file("[a-c]x\n", "dx"), kNone);
  EXPECT_EQ(file("[!a-c]x\n", "dx"), kIgnore);
  EXPECT_EQ(file("[!a-c]x\n", "bx"), kNone);
  EXPECT_EQ(file("[^a-c]x\n", "dx"), kIgnore);
  EXPECT_EQ(file("[^a-c]x\n", "ax"), kNone);
  EXPECT_EQ(file("[]]x\n", "]x"), kIgnore);  // ']' first is a member
  EXPECT_EQ(file("[!]]x\n", "ax"), kIgnore);
  EXPECT_EQ(file("[!]]x\n", "]x"), kNone);
  EXPECT_EQ(file("[a-]x\n", "-x"), kIgnore);  // '-' last is a member
  EXPECT_EQ(file("[-a]x\n", "-x"), kIgnore);
  EXPECT_EQ(file("[\\]]x\n", "]x"), kIgnore);
  EXPECT_EQ(file("[a\\-c]x\n", "bx"), kNone);  // an escaped '-' is no range
  EXPECT_EQ(file("[a\\-c]x\n", "-x"), kIgnore);
  EXPECT_EQ(file("[*?]x\n", "*x"), kIgnore);
  EXPECT_EQ(file("[*?]x\n", "ax"), kNone);
  EXPECT_EQ(file("[[:digit:]]x\n", "7x"), kIgnore);
  EXPECT_EQ(file("[[:digit:]]x\n", "ax"), kNone);
  EXPECT_EQ(file("[[:upper:][:digit:]]\n", "Q"), kIgnore);
  EXPECT_EQ(file("[![:alpha:]]\n", "_"), kIgnore);
  EXPECT_EQ(file("[![:alpha:]]\n", "z"), kNone);
  EXPECT_EQ(file("[[:space:]]\n", " "), kIgnore);
  EXPECT_EQ(file("[[:punct:]]\n", "~"), kIgnore);
  EXPECT_EQ(file("[[:xdigit:]]\n", "F"), kIgnore);
  EXPECT_EQ(file("[[:xdigit:]]\n", "g"), kNone);
  EXPECT_EQ(file("[[:a]\n", ":"), kIgnore);  // no ":]": "[:a" is three members
  EXPECT_EQ(file("[[:a]\n", "["), kIgnore);
  EXPECT_EQ(file("[[:a]\n", "a"), kIgnore);
  // Malformed classes match nothing.
  EXPECT_EQ(file("[[:bogus:]]\n", "b"), kNone);
  EXPECT_EQ(file("[abc\n", "a"), kNone);
  EXPECT_EQ(file("[abc\n", "[abc"), kNone);
  EXPECT_TRUE(IgnoreRules("", "[abc\nx[[:nope:]]\n").empty());
  // In a path pattern a class never matches '/'.
  EXPECT_EQ(file("x[/]y\n", "x/y"), kNone);
  EXPECT_EQ(file("a/x[!b]y\n", "a/x/y"), kNone);
}

TEST(IgnoreRulesTest, BackslashMakesTheNextCharacterLiteral) {
  EXPECT_EQ(file("\\*\n", "*"), kIgnore);
  EXPECT_EQ(file("\\*\n", "a"), kNone);
  EXPECT_EQ(file("\\?\n", "?"), kIgnore);
  EXPECT_EQ(file("\\?\n", "a"), kNone);
  EXPECT_EQ(file("\\[a]\n", "[a]"), kIgnore);
  EXPECT_EQ(file("\\[a]\n", "a"), kNone);
  EXPECT_EQ(file("\\\\\n", "\\"), kIgnore);
  EXPECT_EQ(file("\\a\n", "a"), kIgnore);
  EXPECT_EQ(file("*\\*\n", "x*"), kIgnore);
  EXPECT_EQ(file("*\\*\n", "xy"), kNone);
  // A pattern ending in an unpaired backslash matches nothing.
  EXPECT_EQ(file("foo\\\n", "foo"), kNone);
  EXPECT_EQ(file("foo\\\n", "foo\\"), kNone);
  EXPECT_TRUE(IgnoreRules("", "foo\\\n").empty());
}

TEST(IgnoreRulesTest, DoubleAsterisk) {
  // Leading "**/": in all directories.
  EXPECT_EQ(file("**/foo\n", "foo"), kIgnore);
  EXPECT_EQ(file("**/foo\n", "a/foo"), kIgnore);
  EXPECT_EQ(file("**/foo\n", "a/b/foo"), kIgnore);
  EXPECT_EQ(file("**/foo/bar\n", "a/b/foo/bar"), kIgnore);
  EXPECT_EQ(file("**/foo/bar\n", "foo/bar"), kIgnore);
  EXPECT_EQ(file("**/foo/bar\n", "foo/x/bar"), kNone);
  // Trailing "/**": everything inside.
  EXPECT_EQ(file("abc/**\n", "abc/x"), kIgnore);
  EXPECT_EQ(file("abc/**\n", "abc/x/y"), kIgnore);
  EXPECT_EQ(dir("abc/**\n", "abc"), kNone);
  EXPECT_EQ(file("abc/**\n", "x/abc/y"), kNone);
  // "/**/": zero or more directories.
  EXPECT_EQ(file("a/**/b\n", "a/b"), kIgnore);
  EXPECT_EQ(file("a/**/b\n", "a/x/b"), kIgnore);
  EXPECT_EQ(file("a/**/b\n", "a/x/y/b"), kIgnore);
  EXPECT_EQ(file("a/**/b\n", "a/xb"), kNone);
  EXPECT_EQ(file("a/**/**/b\n", "a/b"), kIgnore);
  // Other consecutive asterisks are a plain "*".
  EXPECT_EQ(file("a**b\n", "axyb"), kIgnore);
  EXPECT_EQ(file("x/a**b\n", "x/acb"), kIgnore);
  EXPECT_EQ(file("x/a**b\n", "x/a/b"), kNone);
  EXPECT_EQ(file("x/**b\n", "x/y/b"), kNone);
  EXPECT_EQ(file("x/**b\n", "x/yb"), kIgnore);
  EXPECT_EQ(file("foo**/bar\n", "foo/bar"), kIgnore);
  EXPECT_EQ(file("foo**/bar\n", "fooX/bar"), kIgnore);
  EXPECT_EQ(file("foo**/bar\n", "foo/x/bar"), kNone);  // git >= 2.52
  EXPECT_EQ(file("x/b**\n", "x/b/c"), kNone);
  EXPECT_EQ(file("***/foo\n", "a/b/foo"), kIgnore);
  EXPECT_EQ(file("x/***\n", "x/a/b"), kIgnore);
  EXPECT_EQ(file("**\n", "a/b/c"), kIgnore);
  EXPECT_EQ(file("/**\n", "a/b/c"), kIgnore);
  EXPECT_EQ(file("**/\n", "a"), kNone);
  EXPECT_EQ(dir("**/\n", "a/b"), kIgnore);
}

// git's wildmatch once backtracked exponentially on these (git commit 1f2e05f0b7); this one
// does not, so the test finishes at once.
TEST(IgnoreRulesTest, ManyStarsDoNotBacktrackExponentially) {
  std::string name(80, 'a');
  name += 'b';
  EXPECT_EQ(file("*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a\n", name), kNone);
  EXPECT_EQ(file("x/*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a\n", "x/" + name), kNone);
  EXPECT_EQ(file("**/*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a/**/c\n", name + "/" + name + "/d"), kNone);
}

TEST(IgnoreRulesTest, ExcludesListTakesOneLinePerElement) {
  IgnoreRules rules("", std::vector<std::string>{"*.log", "!keep.log", "/data/", "# c", "a "});
  EXPECT_EQ(rules.match("x/y.log", false), kIgnore);
  EXPECT_EQ(rules.match("x/keep.log", false), kInclude);
  EXPECT_EQ(rules.match("data", true), kIgnore);
  EXPECT_EQ(rules.match("x/data", true), kNone);
  EXPECT_EQ(rules.match("# c", false), kNone);
  EXPECT_EQ(rules.match("a", false), kIgnore);
}

TEST(IgnoreRulesTest, MoveKeepsRules) {
  IgnoreRules a("d", "x\n");
  IgnoreRules b(std::move(a));
  EXPECT_EQ(b.match("d/x", false), kIgnore);
  IgnoreRules c("", "");
  c = std::move(b);
  EXPECT_EQ(c.match("d/q/x", false), kIgnore);
}

TEST(IgnoreStackTest, EmptyStackIgnoresNothing) {
  IgnoreStack stack;
  EXPECT_FALSE(stack.ignored("a", false));
  EXPECT_EQ(stack.verdict("a", true), kNone);
  EXPECT_EQ(stack.size(Tier::kOverride), 0u);
  EXPECT_EQ(stack.size(Tier::kGitignore), 0u);
}

TEST(IgnoreStackTest, DeeperGitignoreOverridesShallower) {
  IgnoreRules root("", "*.log\n");
  IgnoreRules sub("sub", "!*.log\n");
  IgnoreStack stack;
  stack.push(&root, Tier::kGitignore);
  stack.push(&sub, Tier::kGitignore);
  EXPECT_TRUE(stack.ignored("a.log", false));
  EXPECT_FALSE(stack.ignored("sub/a.log", false));
  EXPECT_FALSE(stack.ignored("sub/x/a.log", false));
  EXPECT_EQ(stack.verdict("sub/a.log", false), kInclude);
  stack.pop(Tier::kGitignore);
  EXPECT_TRUE(stack.ignored("sub/a.log", false));
  EXPECT_EQ(stack.size(Tier::kGitignore), 1u);
}

TEST(IgnoreStackTest, ShallowerRulesApplyWhenDeeperHaveNoVerdict) {
  IgnoreRules root("", "*.log\n");
  IgnoreRules sub("sub", "*.tmp\n");
  IgnoreStack stack;
  stack.push(&root, Tier::kGitignore);
  stack.push(&sub, Tier::kGitignore);
  EXPECT_TRUE(stack.ignored("sub/a.log", false));
  EXPECT_TRUE(stack.ignored("sub/a.tmp", false));
  EXPECT_FALSE(stack.ignored("a.tmp", false));  // not below sub
  EXPECT_FALSE(stack.ignored("sub/a.txt", false));
}

TEST(IgnoreStackTest, OverrideTierDecidesBeforeGitignoreTier) {
  IgnoreRules excludes("", std::vector<std::string>{"!keep.log", "*.tmp"});
  IgnoreRules gitignore("", "*.log\n!*.tmp\n");
  IgnoreRules deep_gitignore("sub", "!*.log\n*.tmp\n");
  IgnoreStack stack;
  stack.push(&excludes, Tier::kOverride);
  stack.push(&gitignore, Tier::kGitignore);
  stack.push(&deep_gitignore, Tier::kGitignore);
  EXPECT_FALSE(stack.ignored("keep.log", false));      // override re-includes
  EXPECT_TRUE(stack.ignored("other.log", false));      // override silent: .gitignore decides
  EXPECT_TRUE(stack.ignored("x.tmp", false));          // override beats the .gitignore "!*.tmp"
  EXPECT_FALSE(stack.ignored("sub/keep.log", false));  // override beats a deeper .gitignore
  EXPECT_FALSE(stack.ignored("sub/other.log", false));
  EXPECT_TRUE(stack.ignored("sub/x.tmp", false));
  stack.pop(Tier::kOverride);
  EXPECT_FALSE(stack.ignored("x.tmp", false));
  EXPECT_TRUE(stack.ignored("sub/x.tmp", false));
}

TEST(IgnoreStackTest, DeeperRtenvignoreOverridesExcludes) {
  IgnoreRules excludes("", std::vector<std::string>{"data/", "*.bin"});
  IgnoreRules root_rtenv("", "!small.bin\n");
  IgnoreRules deep_rtenv("models", "!*.bin\n");
  IgnoreRules gitignore("models", "*.bin\n");
  IgnoreStack stack;
  stack.push(&excludes, Tier::kOverride);
  stack.push(&root_rtenv, Tier::kOverride);
  EXPECT_TRUE(stack.ignored("data", true));
  EXPECT_FALSE(stack.ignored("data", false));
  EXPECT_TRUE(stack.ignored("a.bin", false));
  EXPECT_FALSE(stack.ignored("small.bin", false));  // root .rtenvignore was pushed later
  stack.push(&deep_rtenv, Tier::kOverride);
  stack.push(&gitignore, Tier::kGitignore);
  EXPECT_FALSE(stack.ignored("models/w.bin", false));  // deeper .rtenvignore wins everywhere
  EXPECT_TRUE(stack.ignored("x/w.bin", false));
  stack.pop(Tier::kGitignore);
  stack.pop(Tier::kOverride);
  EXPECT_TRUE(stack.ignored("models/w.bin", false));
  EXPECT_EQ(stack.size(Tier::kOverride), 2u);
}

// Not a benchmark with a threshold: prints the cost of one ignored() call on rules like those of
// a Python project (GitHub's Python.gitignore and Node.gitignore, abridged).
TEST(IgnoreStackTest, TimingOfTypicalRules) {
  IgnoreRules python("", R"(# Byte-compiled / optimized / DLL files
__pycache__/
*.py[cod]
*$py.class
*.so
.Python
build/
develop-eggs/
dist/
downloads/
eggs/
.eggs/
lib/
lib64/
parts/
sdist/
var/
wheels/
share/python-wheels/
*.egg-info/
.installed.cfg
*.egg
MANIFEST
*.manifest
*.spec
pip-log.txt
pip-delete-this-directory.txt
htmlcov/
.tox/
.nox/
.coverage
.coverage.*
.cache
nosetests.xml
coverage.xml
*.cover
*.py,cover
.hypothesis/
.pytest_cache/
cover/
*.mo
*.pot
*.log
local_settings.py
db.sqlite3
db.sqlite3-journal
instance/
.webassets-cache
.scrapy
docs/_build/
.pybuilder/
target/
.ipynb_checkpoints
profile_default/
ipython_config.py
.pdm.toml
__pypackages__/
celerybeat-schedule
celerybeat.pid
*.sage.py
.env
.venv
env/
venv/
ENV/
env.bak/
venv.bak/
.spyderproject
.spyproject
.ropeproject
/site
.mypy_cache/
.dmypy.json
dmypy.json
.pyre/
.pytype/
cython_debug/
node_modules/
npm-debug.log*
yarn-debug.log*
.npm
*.tsbuildinfo
.eslintcache
*.tgz
.yarn-integrity
.DS_Store
**/checkpoints/**/*.pt
data/**/raw
)");
  IgnoreRules excludes("", std::vector<std::string>{"*.ckpt", "/outputs/", "!keep.ckpt"});
  IgnoreRules sub("src/pkg", "generated_*.py\n!generated_keep.py\n/tmp/\n");

  std::vector<std::string> paths;
  const char* dirs[] = {"src/pkg", "src/pkg/sub", "tests", "docs/api", "src/pkg/models/layers"};
  const char* names[] = {"module.py",   "module.pyc",     "README.md", "data.json", "x.so",
                         "config.yaml", "generated_a.py", "notes.txt", "Makefile",  "w.pt"};
  for (size_t i = 0; paths.size() < 20000; i++) {
    paths.push_back(std::string(dirs[i % 5]) + "/f" + std::to_string(i / 50) + "_" + names[i % 10]);
  }
  IgnoreStack stack;
  stack.push(&excludes, Tier::kOverride);
  stack.push(&python, Tier::kGitignore);
  stack.push(&sub, Tier::kGitignore);

  constexpr int kRounds = 5;
  auto time_all = [&](size_t* ignored) {
    auto start = std::chrono::steady_clock::now();
    for (int round = 0; round < kRounds; round++) {
      for (const std::string& p : paths) *ignored += stack.ignored(p, false);
    }
    return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start)
        .count();
  };
  size_t ignored = 0;
  double ns = time_all(&ignored);
  std::printf(
      "[   INFO   ] ignored(): %.0f ns per call (%zu paths x %d, 3 rule sets with 102 "
      "patterns, %zu ignored)\n",
      ns / (paths.size() * kRounds), paths.size(), kRounds, ignored / kRounds);
  EXPECT_EQ(ignored / kRounds, paths.size() * 2 / 10);  // the .pyc and .so names

  // A small project: a few short files.
  IgnoreRules small_root("", "*.pyc\n__pycache__/\n.venv/\n/build/\n*.log\n");
  IgnoreRules small_sub("src/pkg", "*.so\n!keep.so\n");
  IgnoreRules small_rtenv("", "data/\n*.pt\n");
  stack.pop(Tier::kGitignore);
  stack.pop(Tier::kGitignore);
  stack.pop(Tier::kOverride);
  stack.push(&small_rtenv, Tier::kOverride);
  stack.push(&small_root, Tier::kGitignore);
  stack.push(&small_sub, Tier::kGitignore);
  size_t small_ignored = 0;
  double small_ns = time_all(&small_ignored);
  std::printf("[   INFO   ] ignored(): %.0f ns per call with 3 small rule sets (9 patterns)\n",
              small_ns / (paths.size() * kRounds));
  EXPECT_EQ(small_ignored / kRounds, paths.size() * 3 / 10);  // and the .pt names
}

}  // namespace
}  // namespace rtenv::pack
