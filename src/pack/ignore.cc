#include "pack/ignore.h"

#include <bitset>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <optional>
#include <utility>

// Each pattern is compiled once into a short program of tokens (literal byte, `?`, a byte set,
// `*`, and the two forms `**` takes between slashes), matched by backtracking over the path.
// Common shapes (a plain name, `*.ext`) skip the program altogether.

namespace rtenv::pack {
namespace {

using uchar = unsigned char;

enum class Op : uint8_t {
  kByte,        // one given byte
  kOne,         // `?`: any byte but '/'
  kSet,         // `[...]`: a byte of the set (never '/')
  kRun,         // `*`: any run of bytes without '/'
  kDirs,        // `**/`: nothing, or any run of whole directories ("a/", "a/b/", ...)
  kEverything,  // a final `/**` or a lone `**`: any rest at all
};

struct Token {
  Op op;
  uchar byte = 0;
  uint16_t set = 0;  // index into Glob::sets
};

struct Glob {
  std::vector<Token> tokens;
  std::vector<std::bitset<256>> sets;
};

bool named_class(std::string_view name, std::bitset<256>* set) {
  struct Named {
    const char* name;
    bool (*test)(int);
  };
  static constexpr Named kClasses[] = {
      {"alnum", [](int c) { return std::isalnum(c) != 0; }},
      {"alpha", [](int c) { return std::isalpha(c) != 0; }},
      {"blank", [](int c) { return c == ' ' || c == '\t'; }},
      {"cntrl", [](int c) { return std::iscntrl(c) != 0; }},
      {"digit", [](int c) { return c >= '0' && c <= '9'; }},
      {"graph", [](int c) { return std::isgraph(c) != 0; }},
      {"lower", [](int c) { return c >= 'a' && c <= 'z'; }},
      {"print", [](int c) { return std::isprint(c) != 0; }},
      {"punct", [](int c) { return std::ispunct(c) != 0; }},
      {"space", [](int c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }},
      {"upper", [](int c) { return c >= 'A' && c <= 'Z'; }},
      {"xdigit", [](int c) { return std::isxdigit(c) != 0; }},
  };
  for (const auto& k : kClasses) {
    if (name != k.name) continue;
    // ASCII only, independent of the locale, as git does.
    for (int c = 0; c < 128; ++c) {
      if (k.test(c)) set->set(static_cast<size_t>(c));
    }
    return true;
  }
  return false;
}

// Parses the bracket expression starting at p[i] == '['. Returns the index just past its ']',
// or nullopt if it is malformed (unclosed, unknown [:name:]): such a pattern matches nothing.
std::optional<size_t> parse_set(std::string_view p, size_t i, std::bitset<256>* out) {
  std::bitset<256> set;
  ++i;
  bool negate = i < p.size() && (p[i] == '!' || p[i] == '^');
  if (negate) ++i;
  bool first = true;
  for (;; first = false) {
    if (i >= p.size()) return std::nullopt;
    uchar c = p[i];
    if (c == ']' && !first) {
      ++i;
      break;
    }
    if (c == '[' && i + 1 < p.size() && p[i + 1] == ':') {
      // "[:name:]" if the next ']' closes it with ":]"; otherwise '[' is a plain character.
      size_t close = p.find(']', i + 2);
      if (close == std::string_view::npos) return std::nullopt;
      if (close > i + 2 && p[close - 1] == ':') {
        if (!named_class(p.substr(i + 2, close - i - 3), &set)) return std::nullopt;
        i = close + 1;
        continue;
      }
    }
    if (c == '\\') {
      if (++i >= p.size()) return std::nullopt;
      c = p[i];
    }
    ++i;
    uchar hi = c;
    if (i + 1 < p.size() && p[i] == '-' && p[i + 1] != ']') {
      size_t j = i + 1;
      if (p[j] == '\\') {
        if (++j >= p.size()) return std::nullopt;
      }
      hi = p[j];
      i = j + 1;
    }
    // The first byte of a range always counts, even when the range itself is empty ("z-a").
    set.set(c);
    for (int b = c; b <= hi; ++b) set.set(static_cast<size_t>(b));
  }
  if (negate) set.flip();
  set.reset('/');
  *out = set;
  return i;
}

// Compiles a pattern (already without '!', its trailing '/' and, for path patterns, its leading
// '/'). `path_mode`: the pattern has a '/', so it is matched against the whole path and `**` has
// its directory meanings. nullopt: the pattern can never match.
std::optional<Glob> compile(std::string_view p, bool path_mode) {
  Glob g;
  for (size_t i = 0; i < p.size();) {
    uchar c = p[i];
    if (c == '\\') {
      if (i + 1 == p.size()) return std::nullopt;  // a trailing backslash matches nothing
      g.tokens.push_back({Op::kByte, static_cast<uchar>(p[i + 1])});
      i += 2;
    } else if (c == '?') {
      g.tokens.push_back({Op::kOne});
      ++i;
    } else if (c == '[') {
      std::bitset<256> set;
      auto end = parse_set(p, i, &set);
      if (!end) return std::nullopt;
      g.tokens.push_back({Op::kSet, 0, static_cast<uint16_t>(g.sets.size())});
      g.sets.push_back(set);
      i = *end;
    } else if (c == '*') {
      size_t run = i;
      while (run < p.size() && p[run] == '*') ++run;
      bool whole_component =
          run - i >= 2 && (i == 0 || p[i - 1] == '/') && (run == p.size() || p[run] == '/');
      if (path_mode && whole_component && run < p.size()) {
        g.tokens.push_back({Op::kDirs});  // "**/" swallows its slash
        i = run + 1;
      } else if (whole_component && run == p.size()) {
        g.tokens.push_back({Op::kEverything});
        i = run;
      } else {
        g.tokens.push_back({Op::kRun});
        i = run;
      }
    } else {
      g.tokens.push_back({Op::kByte, c});
      ++i;
    }
  }
  return g;
}

// Matches a glob against [begin, end) by backtracking, remembering the (token, position) pairs
// that failed: each is tried once, so a pattern with many stars stays O(tokens x length).
class GlobMatch {
 public:
  GlobMatch(const Glob& g, const uchar* begin, const uchar* end, std::vector<bool>& failed)
      : g_(g),
        begin_(begin),
        end_(end),
        width_(static_cast<size_t>(end - begin) + 1),
        failed_(failed) {
    failed_.assign((g.tokens.size() + 1) * width_, false);
  }
  bool run() { return at(0, begin_); }

 private:
  bool at(size_t t, const uchar* s) {
    size_t key = t * width_ + static_cast<size_t>(s - begin_);
    if (failed_[key]) return false;
    bool ok = step(t, s);
    if (!ok) failed_[key] = true;
    return ok;
  }

  bool step(size_t t, const uchar* s) {
    for (; t < g_.tokens.size(); ++t) {
      const Token& tok = g_.tokens[t];
      switch (tok.op) {
        case Op::kByte:
          if (s == end_ || *s != tok.byte) return false;
          ++s;
          break;
        case Op::kOne:
          if (s == end_ || *s == '/') return false;
          ++s;
          break;
        case Op::kSet:
          if (s == end_ || !g_.sets[tok.set].test(*s)) return false;
          ++s;
          break;
        case Op::kRun:
          for (;; ++s) {
            if (at(t + 1, s)) return true;
            if (s == end_ || *s == '/') return false;
          }
        case Op::kDirs:
          if (at(t + 1, s)) return true;
          for (; s != end_; ++s) {
            if (*s == '/' && at(t + 1, s + 1)) return true;
          }
          return false;
        case Op::kEverything:
          return true;
      }
    }
    return s == end_;
  }

  const Glob& g_;
  const uchar* begin_;
  const uchar* end_;
  size_t width_;
  std::vector<bool>& failed_;
};

bool run_glob(const Glob& g, std::string_view text) {
  thread_local std::vector<bool> failed;  // reused: no allocation per match once warm
  auto* b = reinterpret_cast<const uchar*>(text.data());
  return GlobMatch(g, b, b + text.size(), failed).run();
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         std::memcmp(s.data() + s.size() - suffix.size(), suffix.data(), suffix.size()) == 0;
}

bool has_glob_chars(std::string_view s) {
  return s.find_first_of("*?[\\") != std::string_view::npos;
}

// Drops trailing spaces that are not escaped with a backslash (tabs stay, as in git).
void trim_trailing_spaces(std::string& s) {
  size_t keep = s.size();
  while (keep > 0 && s[keep - 1] == ' ') {
    size_t backslashes = 0;
    for (size_t j = keep - 1; j > 0 && s[j - 1] == '\\'; --j) ++backslashes;
    if (backslashes % 2 == 1) break;  // "\ " is an escaped, kept space
    --keep;
  }
  s.resize(keep);
}

}  // namespace

struct IgnoreRules::Impl {
  enum class Kind : uint8_t {
    kName,        // no '/', no wildcard: the last component equals `text`
    kNameSuffix,  // "*literal": the last component ends with `text`
    kNameGlob,    // no '/': `glob` against the last component
    kPath,        // a '/' but no wildcard: the path below base equals `text`
    kPathGlob,    // `glob` against the path below base
  };
  struct Pattern {
    Kind kind;
    std::string text;
    Glob glob;
    bool negative = false;
    bool dir_only = false;
  };

  std::string base;
  std::vector<Pattern> patterns;

  void add_line(std::string_view line);
  Verdict match(std::string_view path, bool is_dir) const;
};

void IgnoreRules::Impl::add_line(std::string_view line) {
  line = line.substr(0, line.find('\0'));
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line.empty() || line[0] == '#') return;
  std::string s(line);
  trim_trailing_spaces(s);
  Pattern pat{Kind::kName, {}, {}, false, false};
  std::string_view p = s;
  if (!p.empty() && p[0] == '!') {
    pat.negative = true;
    p.remove_prefix(1);
  }
  if (!p.empty() && p.back() == '/') {
    pat.dir_only = true;
    p.remove_suffix(1);
  }
  if (p.empty()) return;
  bool path_mode = p.find('/') != std::string_view::npos;
  if (path_mode && p[0] == '/') p.remove_prefix(1);  // anchoring is implied by path mode
  if (p.empty()) return;
  bool glob = has_glob_chars(p);
  if (!glob) {
    pat.kind = path_mode ? Kind::kPath : Kind::kName;
    pat.text = p;
  } else if (!path_mode && p[0] == '*' && !has_glob_chars(p.substr(1))) {
    pat.kind = Kind::kNameSuffix;
    pat.text = p.substr(1);
  } else {
    auto compiled = compile(p, path_mode);
    if (!compiled) return;
    pat.kind = path_mode ? Kind::kPathGlob : Kind::kNameGlob;
    pat.glob = std::move(*compiled);
  }
  patterns.push_back(std::move(pat));
}

IgnoreRules::Verdict IgnoreRules::Impl::match(std::string_view path, bool is_dir) const {
  std::string_view rel = path;
  if (!base.empty()) {
    if (path.size() <= base.size() + 1 || path[base.size()] != '/' ||
        std::memcmp(path.data(), base.data(), base.size()) != 0) {
      return Verdict::kNone;
    }
    rel.remove_prefix(base.size() + 1);
  } else if (path.empty()) {
    return Verdict::kNone;
  }
  size_t slash = rel.rfind('/');
  std::string_view name = slash == std::string_view::npos ? rel : rel.substr(slash + 1);

  // The last pattern that matches decides.
  for (auto it = patterns.rbegin(); it != patterns.rend(); ++it) {
    const Pattern& pat = *it;
    if (pat.dir_only && !is_dir) continue;
    bool hit = false;
    switch (pat.kind) {
      case Kind::kName:
        hit = name == pat.text;
        break;
      case Kind::kNameSuffix:
        hit = ends_with(name, pat.text);
        break;
      case Kind::kNameGlob:
        hit = run_glob(pat.glob, name);
        break;
      case Kind::kPath:
        hit = rel == pat.text;
        break;
      case Kind::kPathGlob:
        hit = run_glob(pat.glob, rel);
        break;
    }
    if (hit) return pat.negative ? Verdict::kInclude : Verdict::kIgnore;
  }
  return Verdict::kNone;
}

IgnoreRules::IgnoreRules(std::string base, std::string_view text) : impl_(new Impl) {
  while (!base.empty() && base.back() == '/') base.pop_back();
  impl_->base = std::move(base);
  static constexpr std::string_view kBom = "\xEF\xBB\xBF";
  if (text.substr(0, kBom.size()) == kBom) text.remove_prefix(kBom.size());
  while (!text.empty()) {
    size_t nl = text.find('\n');
    impl_->add_line(text.substr(0, nl));
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
}

IgnoreRules::IgnoreRules(std::string base, const std::vector<std::string>& patterns)
    : impl_(new Impl) {
  while (!base.empty() && base.back() == '/') base.pop_back();
  impl_->base = std::move(base);
  for (const std::string& line : patterns) impl_->add_line(line);
}

IgnoreRules::Verdict IgnoreRules::match(std::string_view path, bool is_dir) const {
  return impl_->match(path, is_dir);
}

bool IgnoreRules::empty() const { return impl_->patterns.empty(); }

IgnoreRules::~IgnoreRules() = default;
IgnoreRules::IgnoreRules(IgnoreRules&&) noexcept = default;
IgnoreRules& IgnoreRules::operator=(IgnoreRules&&) noexcept = default;

IgnoreRules::Verdict IgnoreStack::verdict(std::string_view path, bool is_dir) const {
  for (const auto* tier : {&override_, &gitignore_}) {
    for (auto it = tier->rbegin(); it != tier->rend(); ++it) {
      IgnoreRules::Verdict v = (*it)->match(path, is_dir);
      if (v != IgnoreRules::Verdict::kNone) return v;
    }
  }
  return IgnoreRules::Verdict::kNone;
}

}  // namespace rtenv::pack
