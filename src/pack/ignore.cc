#include "pack/ignore.h"

#include <algorithm>
#include <cassert>
#include <cstdint>
#include <cstring>
#include <utility>

// A port of git's matcher: dir.c (add_patterns_from_buffer, trim_trailing_spaces,
// parse_path_pattern, match_basename, match_pathname, last_matching_pattern_from_list) and
// wildmatch.c, as of git 2.52 (which includes the "foo**/bar" fix and wildmatch's
// non-exponential backtracking), with core.ignorecase=false. Comments name the git function each
// piece mirrors; deviations from git's code are only in representation (lengths instead of NUL
// terminators for the path) and in precomputed filters that reject a pattern early only when
// git's algorithm could not match either.

namespace rtenv::pack {
namespace {

using uchar = unsigned char;

// sane-ctype.h: GIT_GLOB_SPECIAL is exactly * ? [ and backslash.
constexpr bool is_glob_special(uchar c) { return c == '*' || c == '?' || c == '[' || c == '\\'; }

// git's locale-independent ASCII ctype (ctype.c, sane-ctype.h), as wildmatch uses it.
constexpr bool is_upper(uchar c) { return c >= 'A' && c <= 'Z'; }
constexpr bool is_lower(uchar c) { return c >= 'a' && c <= 'z'; }
constexpr bool is_alpha(uchar c) { return is_upper(c) || is_lower(c); }
constexpr bool is_digit(uchar c) { return c >= '0' && c <= '9'; }
constexpr bool is_alnum(uchar c) { return is_alpha(c) || is_digit(c); }
constexpr bool is_blank(uchar c) { return c == ' ' || c == '\t'; }
constexpr bool is_cntrl(uchar c) { return c < 0x20 || c == 0x7f; }
constexpr bool is_graph(uchar c) { return c > 0x20 && c < 0x7f; }
constexpr bool is_print(uchar c) { return c >= 0x20 && c < 0x7f; }
constexpr bool is_punct(uchar c) { return is_graph(c) && !is_alnum(c); }
constexpr bool is_space(uchar c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
constexpr bool is_xdigit(uchar c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// wildmatch.c's internal results.
enum WildResult : int { kWmMatch = 0, kWmNoMatch = 1, kWmAbortAll = -1, kWmAbortToStarStar = -2 };

// Compares a "[:name:]" class name `s` of length `len` with `lit`.
bool class_is(const uchar* s, long len, const char* lit) {
  return len == static_cast<long>(std::strlen(lit)) &&
         std::memcmp(s, lit, static_cast<size_t>(len)) == 0;
}

// wildmatch.c dowild(): `p` is NUL-terminated (patterns never contain NUL); the text is
// [text, end) and never contains NUL either, so "*text" is "text < end ? *text : 0".
// `pathname` is WM_PATHNAME.
int dowild(const uchar* p, const uchar* text, const uchar* end, bool pathname) {
  uchar p_ch;
  const uchar* pattern = p;

  for (; (p_ch = *p) != '\0'; text++, p++) {
    int matched, match_slash, negated;
    uchar t_ch, prev_ch;
    if ((t_ch = text < end ? *text : 0) == '\0' && p_ch != '*') return kWmAbortAll;
    switch (p_ch) {
      case '\\':
        // Literal match with the following character; a trailing backslash matches nothing,
        // because t_ch is never NUL here.
        p_ch = *++p;
        [[fallthrough]];
      default:
        if (t_ch != p_ch) return kWmNoMatch;
        continue;
      case '?':
        if (pathname && t_ch == '/') return kWmNoMatch;
        continue;
      case '*':
        if (*++p == '*') {
          const uchar* prev_p = p;
          while (*++p == '*') {
          }
          if (!pathname) {
            match_slash = 1;
          } else if ((prev_p - pattern < 2 || *(prev_p - 2) == '/') &&
                     (*p == '\0' || *p == '/' || (p[0] == '\\' && p[1] == '/'))) {
            // "**/" at the start or after a slash also matches no directory at all.
            if (p[0] == '/' && dowild(p + 1, text, end, pathname) == kWmMatch) return kWmMatch;
            match_slash = 1;
          } else {
            match_slash = 0;  // any other "**" is a plain "*"
          }
        } else {
          match_slash = pathname ? 0 : 1;
        }
        if (*p == '\0') {
          // Trailing "**" matches everything; trailing "*" only if no slash follows.
          if (!match_slash && std::memchr(text, '/', static_cast<size_t>(end - text))) {
            return kWmAbortToStarStar;
          }
          return kWmMatch;
        } else if (!match_slash && *p == '/') {
          // One asterisk followed by a slash matches the rest of this path component.
          const void* slash = std::memchr(text, '/', static_cast<size_t>(end - text));
          if (!slash) return kWmAbortAll;
          text = static_cast<const uchar*>(slash);
          break;  // the slash is consumed by the for loop
        }
        for (;;) {
          if (t_ch == '\0') break;
          // Advance fast when the asterisk is followed by a literal.
          if (!is_glob_special(*p)) {
            p_ch = *p;
            while ((t_ch = text < end ? *text : 0) != '\0' && (match_slash || t_ch != '/')) {
              if (t_ch == p_ch) break;
              text++;
            }
            if (t_ch != p_ch) return match_slash ? kWmAbortAll : kWmAbortToStarStar;
          }
          if ((matched = dowild(p, text, end, pathname)) != kWmNoMatch) {
            if (!match_slash || matched != kWmAbortToStarStar) return matched;
          } else if (!match_slash && t_ch == '/') {
            return kWmAbortToStarStar;
          }
          ++text;
          t_ch = text < end ? *text : 0;
        }
        return kWmAbortAll;
      case '[':
        p_ch = *++p;
        if (p_ch == '^') p_ch = '!';
        negated = p_ch == '!' ? 1 : 0;
        if (negated) p_ch = *++p;
        prev_ch = 0;
        matched = 0;
        do {
          if (!p_ch) return kWmAbortAll;
          if (p_ch == '\\') {
            p_ch = *++p;
            if (!p_ch) return kWmAbortAll;
            if (t_ch == p_ch) matched = 1;
          } else if (p_ch == '-' && prev_ch && p[1] && p[1] != ']') {
            p_ch = *++p;
            if (p_ch == '\\') {
              p_ch = *++p;
              if (!p_ch) return kWmAbortAll;
            }
            if (t_ch <= p_ch && t_ch >= prev_ch) matched = 1;
            p_ch = 0;  // so that prev_ch becomes 0
          } else if (p_ch == '[' && p[1] == ':') {
            const uchar* s;
            for (s = p += 2; (p_ch = *p) && p_ch != ']'; p++) {
            }
            if (!p_ch) return kWmAbortAll;
            long i = p - s - 1;
            if (i < 0 || p[-1] != ':') {
              // No ":]": treat the '[' as a plain member.
              p = s - 2;
              p_ch = '[';
              if (t_ch == p_ch) matched = 1;
              goto next;
            }
            if (class_is(s, i, "alnum")) {
              if (is_alnum(t_ch)) matched = 1;
            } else if (class_is(s, i, "alpha")) {
              if (is_alpha(t_ch)) matched = 1;
            } else if (class_is(s, i, "blank")) {
              if (is_blank(t_ch)) matched = 1;
            } else if (class_is(s, i, "cntrl")) {
              if (is_cntrl(t_ch)) matched = 1;
            } else if (class_is(s, i, "digit")) {
              if (is_digit(t_ch)) matched = 1;
            } else if (class_is(s, i, "graph")) {
              if (is_graph(t_ch)) matched = 1;
            } else if (class_is(s, i, "lower")) {
              if (is_lower(t_ch)) matched = 1;
            } else if (class_is(s, i, "print")) {
              if (is_print(t_ch)) matched = 1;
            } else if (class_is(s, i, "punct")) {
              if (is_punct(t_ch)) matched = 1;
            } else if (class_is(s, i, "space")) {
              if (is_space(t_ch)) matched = 1;
            } else if (class_is(s, i, "upper")) {
              if (is_upper(t_ch)) matched = 1;
            } else if (class_is(s, i, "xdigit")) {
              if (is_xdigit(t_ch)) matched = 1;
            } else {
              return kWmAbortAll;  // malformed [:class:]
            }
            p_ch = 0;  // so that prev_ch becomes 0
          } else if (t_ch == p_ch) {
            matched = 1;
          }
        next:
          prev_ch = p_ch;
          p_ch = *++p;
        } while (p_ch != ']');
        if (matched == negated || (pathname && t_ch == '/')) return kWmNoMatch;
        continue;
    }
  }
  return text < end ? kWmNoMatch : kWmMatch;
}

bool wildmatch(const char* pattern, std::string_view text, bool pathname) {
  auto* t = reinterpret_cast<const uchar*>(text.data());
  return dowild(reinterpret_cast<const uchar*>(pattern), t, t + text.size(), pathname) == kWmMatch;
}

// Mirrors the parse of a "[...]" class in dowild() without matching: returns the index of the
// closing ']' for the class starting at pattern[i] == '[', or npos if dowild() would abort on it.
size_t skip_class(std::string_view pattern, size_t i) {
  auto at = [&](size_t k) -> uchar { return k < pattern.size() ? pattern[k] : 0; };
  uchar p_ch = at(++i);
  if (p_ch == '^' || p_ch == '!') p_ch = at(++i);
  uchar prev_ch = 0;
  do {
    if (!p_ch) return std::string_view::npos;
    if (p_ch == '\\') {
      p_ch = at(++i);
      if (!p_ch) return std::string_view::npos;
    } else if (p_ch == '-' && prev_ch && at(i + 1) && at(i + 1) != ']') {
      p_ch = at(++i);
      if (p_ch == '\\') {
        p_ch = at(++i);
        if (!p_ch) return std::string_view::npos;
      }
      p_ch = 0;
    } else if (p_ch == '[' && at(i + 1) == ':') {
      size_t s = i += 2;
      while ((p_ch = at(i)) && p_ch != ']') i++;
      if (!p_ch) return std::string_view::npos;
      if (i < s + 1 || at(i - 1) != ':') {
        i = s - 2;
        p_ch = '[';
      } else {
        std::string_view name = pattern.substr(s, i - s - 1);
        static constexpr std::string_view kClasses[] = {"alnum", "alpha", "blank", "cntrl",
                                                        "digit", "graph", "lower", "print",
                                                        "punct", "space", "upper", "xdigit"};
        bool known = false;
        for (std::string_view c : kClasses) known |= name == c;
        if (!known) return std::string_view::npos;
        p_ch = 0;
      }
    }
    prev_ch = p_ch;
    p_ch = at(++i);
  } while (p_ch != ']');
  return i;
}

// dir.c simple_length(): the length of the leading run without glob-special characters.
size_t simple_length(std::string_view s) {
  size_t n = 0;
  while (n < s.size() && !is_glob_special(s[n])) n++;
  return n;
}

// dir.c trim_trailing_spaces(): drops trailing unescaped spaces (not tabs).
void trim_trailing_spaces(std::string& s) {
  size_t last_space = std::string::npos;
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] == ' ') {
      if (last_space == std::string::npos) last_space = i;
    } else if (s[i] == '\\') {
      if (++i == s.size()) return;
      last_space = std::string::npos;
    } else {
      last_space = std::string::npos;
    }
  }
  if (last_space != std::string::npos) s.resize(last_space);
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         std::memcmp(s.data() + s.size() - suffix.size(), suffix.data(), suffix.size()) == 0;
}

}  // namespace

struct IgnoreRules::Impl {
  // How a pattern is matched; the first three are git's match_basename() cases, the others
  // match_pathname()'s.
  enum class Kind : uint8_t {
    kBaseLiteral,   // no '/', no wildcard: the basename equals text
    kBaseEndsWith,  // "*literal": the basename ends with text (the part after '*')
    kBaseWild,      // no '/': wildmatch(text, basename) without WM_PATHNAME
    kPathLiteral,   // no wildcard: the path below base equals text
    kPathWild,      // wildmatch with WM_PATHNAME after a literal prefix of `prefix` bytes
  };
  struct Pattern {
    std::string text;  // see Kind; for path kinds without the leading '/'
    std::string tail;  // literal characters every match must end with (a filter)
    uint32_t prefix = 0;
    // The byte every matching path ends with (the last of `tail`, or of a literal), or -1.
    int last = -1;
    Kind kind = Kind::kBaseLiteral;
    bool negative = false;
    bool dir_only = false;
  };

  std::string base;
  std::vector<Pattern> patterns;

  void add_line(std::string_view line);
  void add_pattern(std::string s);
  Verdict match(std::string_view path, bool is_dir) const;
};

// dir.c add_patterns_from_buffer(), for one line (without its '\n').
void IgnoreRules::Impl::add_line(std::string_view line) {
  if (line.empty() || line[0] == '#') return;
  if (line.back() == '\r') line.remove_suffix(1);
  line = line.substr(0, line.find('\0'));  // git reads the line as a C string
  std::string s(line);
  trim_trailing_spaces(s);
  add_pattern(std::move(s));
}

// dir.c add_pattern() and parse_path_pattern(), then compilation into a Kind.
void IgnoreRules::Impl::add_pattern(std::string s) {
  Pattern pat;
  std::string_view p = s;
  if (!p.empty() && p[0] == '!') {
    pat.negative = true;
    p.remove_prefix(1);
  }
  size_t len = p.size();
  if (len && p[len - 1] == '/') {
    len--;
    pat.dir_only = true;
  }
  bool no_dir = p.substr(0, len).find('/') == std::string_view::npos;
  size_t nowildcardlen = std::min(simple_length(p), len);
  bool ends_with_flag = !p.empty() && p[0] == '*' && simple_length(p.substr(1)) == p.size() - 1;
  p = p.substr(0, len);

  if (no_dir) {
    if (nowildcardlen == len) {
      pat.kind = Kind::kBaseLiteral;
      pat.text = p;
    } else if (ends_with_flag) {
      pat.kind = Kind::kBaseEndsWith;
      pat.text = p.substr(1);
    } else {
      pat.kind = Kind::kBaseWild;
      pat.text = p;
    }
  } else {
    // match_pathname(): one leading '/' only anchors (the pattern is relative to base anyway).
    if (p[0] == '/') {
      p.remove_prefix(1);
      nowildcardlen--;
    }
    pat.text = p;
    pat.prefix = static_cast<uint32_t>(nowildcardlen);
    pat.kind = nowildcardlen == p.size() ? Kind::kPathLiteral : Kind::kPathWild;
  }
  if (pat.kind == Kind::kBaseLiteral || pat.kind == Kind::kPathLiteral) {
    if (pat.text.empty()) return;  // cannot match: paths below base are never empty
  }

  // For wildcard kinds: find the literal characters at the end, which any match must end with,
  // and drop patterns wildmatch would abort on before reaching their end (they cannot match).
  if (pat.kind == Kind::kBaseWild || pat.kind == Kind::kPathWild) {
    std::string_view t = pat.text;
    for (size_t i = 0; i < t.size();) {
      uchar c = t[i];
      if (c == '\\') {
        if (i + 1 == t.size()) return;  // a trailing backslash matches nothing
        pat.tail.push_back(t[i + 1]);
        i += 2;
      } else if (c == '?') {
        pat.tail.clear();
        i++;
      } else if (c == '*') {
        while (i < t.size() && t[i] == '*') i++;
        pat.tail.clear();
        if (i < t.size() && t[i] == '/') i++;  // "**/" may match nothing, slash included
      } else if (c == '[') {
        size_t close = skip_class(t, i);
        if (close == std::string_view::npos) return;
        pat.tail.clear();
        i = close + 1;
      } else {
        pat.tail.push_back(static_cast<char>(c));
        i++;
      }
    }
  }
  const std::string& literal_end =
      pat.kind == Kind::kBaseWild || pat.kind == Kind::kPathWild ? pat.tail : pat.text;
  if (!literal_end.empty()) pat.last = static_cast<uchar>(literal_end.back());
  patterns.push_back(std::move(pat));
}

// dir.c last_matching_pattern_from_list() with match_basename() and match_pathname().
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
  std::string_view basename = slash == std::string_view::npos ? rel : rel.substr(slash + 1);
  const int last = static_cast<uchar>(rel.back());

  for (auto it = patterns.rbegin(); it != patterns.rend(); ++it) {
    const Pattern& pat = *it;
    if ((pat.last >= 0 && pat.last != last) || (pat.dir_only && !is_dir)) continue;
    bool hit = false;
    switch (pat.kind) {
      case Kind::kBaseLiteral:
        hit = basename == pat.text;
        break;
      case Kind::kBaseEndsWith:
        hit = ends_with(basename, pat.text);
        break;
      case Kind::kBaseWild:
        hit = ends_with(basename, pat.tail) && wildmatch(pat.text.c_str(), basename, false);
        break;
      case Kind::kPathLiteral:
        hit = rel == pat.text;
        break;
      case Kind::kPathWild: {
        size_t prefix = pat.prefix;
        if (prefix > rel.size() || !ends_with(rel, pat.tail)) break;
        if (std::memcmp(pat.text.data(), rel.data(), prefix) != 0) break;
        // As git 2.52: keep one byte of the literal prefix, so that wildmatch knows whether
        // the rest starts a path component ("foo**/bar" must not match "foobar").
        if (prefix) prefix--;
        hit = wildmatch(pat.text.c_str() + prefix, rel.substr(prefix), true);
        break;
      }
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
