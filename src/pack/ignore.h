#pragma once
// gitignore-style path matching: the rules for `excludes`, `.gitignore` and `.rtenvignore`.

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace rtenv::pack {

/// One ignore file's (or the `excludes` list's) patterns, in full gitignore syntax: `*`, `?`,
/// `[...]` classes, `**`, `!negation`, leading `/` anchoring, trailing `/` for directories only,
/// `\` escapes, trailing-space rules and `#` comments, as git(1) documents them.
class IgnoreRules {
 public:
  /// `base` is the directory the patterns are relative to, as a path relative to the package
  /// root with '/' separators ("" for the root itself, "a/b" for a .gitignore in a/b).
  IgnoreRules(std::string base, std::string_view text);
  IgnoreRules(std::string base, const std::vector<std::string>& patterns);

  enum class Verdict { kNone, kIgnore, kInclude };
  /// The verdict of the last pattern matching `path` (relative to the package root, '/'
  /// separators, no trailing slash), or kNone if none matches or the path is not below `base`.
  Verdict match(std::string_view path, bool is_dir) const;

  bool empty() const;

  ~IgnoreRules();
  IgnoreRules(IgnoreRules&&) noexcept;
  IgnoreRules& operator=(IgnoreRules&&) noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// The stack of rule sets in force at one directory during a walk, in git's precedence order:
/// deeper .gitignore files override shallower ones, and `excludes` plus `.rtenvignore` override
/// .gitignore files. A path inside an ignored directory is ignored (git never descends there).
class IgnoreStack {
 public:
  /// Rules are consulted from last pushed to first; the first non-kNone verdict wins.
  void push(const IgnoreRules* rules) { rules_.push_back(rules); }
  void pop() { rules_.pop_back(); }
  bool ignored(std::string_view path, bool is_dir) const;

 private:
  std::vector<const IgnoreRules*> rules_;
};

}  // namespace rtenv::pack
