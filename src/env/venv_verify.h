#pragma once
// Checking a venv another node built against the lock it was built from, before it is used
// here. A venv fetched from a shared store is untrusted: whoever can write the store can plant a
// package and point the record at it. What a node can check without the wheels themselves:
//
// - every distribution the lock pins (and only those) is installed: a `<name>-<version>.dist-info`
//   directory in site-packages whose name and version are the pin's;
// - every file of the venv is one that a pinned distribution's RECORD lists, with that RECORD's
//   SHA-256 and size (a script in bin/ after its interpreter line was pointed at the builder's
//   venv, as the builder does after installing);
// - nothing else: no file no RECORD lists (an extra .pth that runs code at start-up, a module
//   shadowing another), no symbolic link.
//
// This binds the venv's files to its RECORDs, and its distributions to the pins; it does not
// bind a RECORD to the wheel the lock's hash names (only the wheel could), so a forger who
// rewrites a RECORD along with its file is caught only by a signed record (records.h,
// docs/cluster.md).

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "spec/runtime_env.h"
#include "util/digest.h"
#include "util/fs.h"
#include "util/result.h"

namespace rtenv::env {

/// A distribution a lock pins.
struct PinnedDistribution {
  std::string name;                    ///< normalized (PEP 503): lowercase, runs of -_. as '-'
  std::optional<std::string> version;  ///< "==" pins; none for a direct reference ("x @ url")
  bool conditional = false;            ///< has an environment marker: may be absent

  bool operator==(const PinnedDistribution&) const = default;
};

/// PEP 503 normalization: "Foo_Bar.baz" -> "foo-bar-baz".
std::string normalize_distribution_name(std::string_view name);

/// The distributions of a locked package list: one per requirement line (option lines such as
/// --index-url are skipped), plus pip itself when a pip field asks for a pip_version (the
/// builder installs it too). A line that names no distribution is kInvalidArgument.
Result<std::vector<PinnedDistribution>> pinned_distributions(const spec::PythonPackages& locked);

/// One row of a RECORD file (a wheel's list of installed files).
struct RecordRow {
  std::string path;  ///< as written: relative to site-packages, or absolute
  std::string hash;  ///< "sha256=<urlsafe base64, unpadded>", or "" (RECORD itself)
  std::string size;  ///< decimal bytes, or ""
  bool operator==(const RecordRow&) const = default;
};

/// RECORD's CSV rows (quoted fields as Python's csv module writes them). kCorrupt for text that
/// is not such CSV or a row that has not three fields.
Result<std::vector<RecordRow>> parse_record(std::string_view text);

/// How RECORD names a digest: "sha256=" + its urlsafe base64 without padding.
std::string record_hash(const Digest& digest);

/// `text` (a script) with the interpreter `from` named in its header (the shebang line, or
/// uv's /bin/sh trampoline in its first two lines) replaced by `to`; nullopt if the header does
/// not name `from` (a longer path that starts the same way is not it).
std::optional<std::string> retarget_script_header(std::string_view text, std::string_view from,
                                                  std::string_view to);

/// What the builder changed in its scripts' headers after installing: `from` was replaced by
/// `to`. A fetched script is checked with `to` put back to `from`.
struct HeaderChange {
  std::string from;  ///< what the installer wrote (the builder's base interpreter)
  std::string to;    ///< what the builder wrote instead (its venv's python)
};

/// Checks the venv tree in `dir` (as fetched, before it is relocated) against `pins`, as the file
/// comment says. `site_packages` is relative to `dir` ("lib/python3.11/site-packages").
/// `digests` gives the content digests of files already known (from their manifests); other
/// files are hashed. kCorrupt with one sentence naming the first file or distribution that does
/// not match; kIo if the tree cannot be read.
Result<void> verify_venv_files(const fs::path& dir, const fs::path& site_packages,
                               const std::vector<PinnedDistribution>& pins,
                               const std::map<std::string, Digest>& digests,
                               const std::vector<HeaderChange>& header_changes);

}  // namespace rtenv::env
