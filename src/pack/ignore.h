#pragma once
// gitignore-style path matching: the rules for `excludes`, `.gitignore` and `.rtenvignore`.

#include <cassert>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace rtenv::pack {

/// One ignore file's (or the `excludes` list's) patterns, in full gitignore syntax: `*`, `?`,
/// `[...]` classes, `**`, `!negation`, leading `/` anchoring, trailing `/` for directories only,
/// `\` escapes, trailing-space rules and `#` comments, as git(1) documents them.
///
/// Matching follows git's documented rules, byte for byte and case-sensitive
/// (core.ignorecase=false), and is tested against git itself on random trees. One deliberate
/// choice: a pattern like `foo**/bar`, where `**` follows literal characters, behaves as
/// documented (like `foo*/bar`); git before 2.52 let it also match `foo/x/bar`. Patterns are
/// compiled once. Immutable after construction, so safe to share between threads.
class IgnoreRules {
 public:
  /// `base` is the directory the patterns are relative to, as a path relative to the package
  /// root with '/' separators ("" for the root itself, "a/b" for a .gitignore in a/b).
  /// `text` is a whole ignore file: lines end with '\n' (a '\r' before it is dropped), a UTF-8
  /// byte-order mark at the start is skipped, and every line is one pattern as git reads it.
  IgnoreRules(std::string base, std::string_view text);
  /// Each element of `patterns` is one line of an ignore file (so "#x" is a comment, "" is
  /// blank and trailing unescaped spaces are dropped, exactly as in a file).
  IgnoreRules(std::string base, const std::vector<std::string>& patterns);

  enum class Verdict { kNone, kIgnore, kInclude };
  /// The verdict of the last pattern matching `path` (relative to the package root, '/'
  /// separators, no trailing slash), or kNone if none matches or the path is not below `base`.
  /// `is_dir` is true for a real directory only (git decides by lstat: a symlink to a
  /// directory is not a directory); patterns ending in '/' match only when it is true.
  Verdict match(std::string_view path, bool is_dir) const;

  /// True if no pattern can ever match (only comments, blank lines or malformed patterns).
  bool empty() const;

  ~IgnoreRules();
  IgnoreRules(IgnoreRules&&) noexcept;
  IgnoreRules& operator=(IgnoreRules&&) noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// The rule sets in force at one directory during a walk, in two precedence tiers.
///
/// Tier kOverride holds the user's `excludes` list (base "") and `.rtenvignore` files; tier
/// kGitignore holds `.gitignore` files. ignored() asks the kOverride sets, last pushed first,
/// and the first verdict other than kNone decides; if none has one, it asks the kGitignore sets
/// the same way; if none has one either, the path is not ignored. Within one set the last
/// matching pattern wins, as in git.
///
/// Contract for the walker:
/// - When entering a directory, push the rule sets of the ignore files found in it (base = that
///   directory) before asking about its entries, and pop them (one pop per push, same tier) when
///   leaving it. So deeper files are consulted before shallower ones. Push the `excludes` list
///   once at the start, before the root's `.rtenvignore`, so that every `.rtenvignore` file
///   overrides it (at equal depth, the later push wins).
/// - Never descend into a directory for which ignored() is true: as in git, nothing below an
///   ignored directory can be re-included, and ignored() does not check a path's parents.
/// - The stack stores pointers only: a pushed IgnoreRules must stay alive (and must not move)
///   until it is popped.
/// Not thread-safe for push/pop; ignored() is const and allocation-free.
class IgnoreStack {
 public:
  enum class Tier { kOverride, kGitignore };

  /// Makes `rules` (not null) the highest-precedence set of `tier`.
  void push(const IgnoreRules* rules, Tier tier) {
    assert(rules);
    rules_of(tier).push_back(rules);
  }
  /// Removes the set pushed last onto `tier`, which must not be empty.
  void pop(Tier tier) {
    assert(!rules_of(tier).empty());
    rules_of(tier).pop_back();
  }
  /// How many sets `tier` holds.
  size_t size(Tier tier) const {
    return tier == Tier::kOverride ? override_.size() : gitignore_.size();
  }

  /// The deciding verdict for `path` (relative to the package root, '/' separators, no trailing
  /// slash; `is_dir` as for IgnoreRules::match), or kNone if no set has one.
  IgnoreRules::Verdict verdict(std::string_view path, bool is_dir) const;
  /// True if `path` is to be skipped: verdict() is kIgnore.
  bool ignored(std::string_view path, bool is_dir) const {
    return verdict(path, is_dir) == IgnoreRules::Verdict::kIgnore;
  }

 private:
  std::vector<const IgnoreRules*>& rules_of(Tier tier) {
    return tier == Tier::kOverride ? override_ : gitignore_;
  }

  std::vector<const IgnoreRules*> override_;
  std::vector<const IgnoreRules*> gitignore_;
};

}  // namespace rtenv::pack
