#include "pack/file_index.h"

#include <cstring>
#include <ctime>

#include "util/fs.h"

namespace rtenv::pack {
namespace {

constexpr std::string_view kMagic = "rtenv-index 1\n";
// Linux stamps files from a coarse clock (one jiffy, up to 10 ms); keep a margin above it.
constexpr int64_t kTimestampSlackNs = 50'000'000;

template <typename T>
void put(std::string& out, const T& v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof v);
}

template <typename T>
bool take(std::string_view& in, T* v) {
  if (in.size() < sizeof *v) return false;
  std::memcpy(v, in.data(), sizeof *v);
  in.remove_prefix(sizeof *v);
  return true;
}

}  // namespace

int64_t now_realtime_ns() {
  struct timespec ts;
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

FileIndex FileIndex::load(const std::filesystem::path& file) {
  FileIndex index;
  auto data = read_file(file);
  if (!data || !data->starts_with(kMagic)) return index;
  std::string_view in(*data);
  in.remove_prefix(kMagic.size());
  uint64_t count = 0;
  if (!take(in, &count)) return index;
  index.entries_.reserve(count);
  for (uint64_t i = 0; i < count; ++i) {
    uint32_t len = 0;
    Entry e;
    Digest::Bytes bytes;
    if (!take(in, &len) || in.size() < len) return FileIndex();
    std::string path(in.substr(0, len));
    in.remove_prefix(len);
    if (!take(in, &e.stat) || !take(in, &bytes)) return FileIndex();
    e.digest = Digest(bytes);
    index.entries_.emplace(std::move(path), e);
  }
  return index;
}

const Digest* FileIndex::lookup(const std::string& rel_path, const FileStat& stat) const {
  auto it = entries_.find(rel_path);
  if (it == entries_.end() || !(it->second.stat == stat)) return nullptr;
  return &it->second.digest;
}

void FileIndex::replace(const std::vector<WalkedFile>& files, int64_t hashed_at_ns) {
  int64_t trusted_before = hashed_at_ns - kTimestampSlackNs;
  // The common case, an unchanged tree, is answered without building a second map.
  size_t same = 0;
  for (const auto& f : files) {
    bool racy = f.stat.mtime_ns >= trusted_before || f.stat.ctime_ns >= trusted_before;
    auto it = entries_.find(f.rel_path);
    if (racy || it == entries_.end() || !(it->second == Entry{f.stat, f.digest})) break;
    ++same;
  }
  if (same == files.size() && same == entries_.size()) return;

  std::unordered_map<std::string, Entry> next;
  next.reserve(files.size());
  for (const auto& f : files) {
    if (f.stat.mtime_ns >= trusted_before || f.stat.ctime_ns >= trusted_before) continue;
    next.emplace(f.rel_path, Entry{f.stat, f.digest});
  }
  if (next != entries_) {
    entries_ = std::move(next);
    changed_ = true;
  }
}

Result<void> FileIndex::save(const std::filesystem::path& file) const {
  if (!changed_) return ok_result();
  std::string out(kMagic);
  out.reserve(kMagic.size() + entries_.size() * 120);
  put(out, static_cast<uint64_t>(entries_.size()));
  for (const auto& [path, e] : entries_) {
    put(out, static_cast<uint32_t>(path.size()));
    out += path;
    put(out, e.stat);
    put(out, e.digest.bytes());
  }
  RTENV_TRY(make_dirs(file.parent_path()));
  return write_file_atomic(file, out);
}

}  // namespace rtenv::pack
