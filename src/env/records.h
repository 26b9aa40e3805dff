#pragma once
// The JSON records rtenv keeps in a store (BlobStore::put_record): a published venv
// (records/pyenvs/<key>.json), a fetched URL (urls/<hash of the URL>), a build lease
// (builds/<name>.lease) and what a node uses (nodes/<name>). A store may be written by anyone who
// can reach it, so a record is untrusted text: each has a value type, the text rtenv writes for it,
// and a parser that validates text into the type or says why it cannot. Parsers never throw and
// never recurse on the input (its size and nesting are bounded before JSON parsing).

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "pack/manifest.h"
#include "util/result.h"

namespace rtenv::env {

/// A venv one node built and published to the shared store for the others to fetch.
struct PublishedVenvRecord {
  /// The record's format; a record of any other is refused (a newer rtenv's, or nonsense).
  static constexpr int64_t kFormat = 1;

  pack::PackageUri package{Digest{}};  ///< the venv's tree, without what kUnpublished leaves out
  std::string venv;                    ///< where it was built (its scripts name that path)
  std::string python;                  ///< the interpreter it was built for
  std::string python_version;
  std::string platform;
  std::string implementation;
  std::string base_venv;  ///< the venv the interpreter runs in, if any ("" if none)
  bool system_site_packages = true;
  std::string tool;      ///< "uv" or "pip"
  std::string built_by;  ///< "<host>:<pid>"
  /// The env's key (hex), which the record's name also carries: what it claims to be. A node
  /// uses a record only for the key it computed itself from its lock and interpreter; the key is
  /// in what is signed, so a signed record cannot be copied to another key's name. Empty in
  /// records of rtenv before it.
  std::string key;
  /// The builder's Ed25519 signature (hex) of signed_text(), and its key's id
  /// (VerifyKey::id()); both empty in an unsigned record.
  std::string signature;
  std::string signed_by;

  bool operator==(const PublishedVenvRecord&) const = default;
};

/// What a published venv's signature signs: every field but the signature, for the key `key`
/// (the verifier's own, not the record's claim).
std::string signed_text(const PublishedVenvRecord& record, std::string_view key);

/// A URL fetched before (by any machine using the store) and the package it became.
struct UrlRecord {
  std::string uri;  ///< "rtenv://sha256/<root>/<file name>"; checked by its user (FileUri)
  std::string url;  ///< the URL, credentials redacted (for people reading the store)

  bool operator==(const UrlRecord&) const = default;
};

/// A build lease: who builds a shared resource, and until when (wall clock, ms since the epoch)
/// the others wait for it before taking over.
struct LeaseRecord {
  std::string holder;  ///< "<host>:<pid>"
  int64_t expires_ms = 0;

  bool operator==(const LeaseRecord&) const = default;
};

/// What a node tells a store it shares with others: the resources it uses now, so that a
/// collection of the store (`rtenv store gc`) keeps them although no pack or fetch touched them
/// within its window. The node's agent rewrites it after each env it sets up and every hour; a
/// collector ignores one older than its window (a node gone).
struct NodeReportRecord {
  static constexpr std::string_view kPrefix = "nodes/";
  std::string node;  ///< the host name
  std::string home;  ///< $RTENV_HOME on it
  int64_t written_ms = 0;
  std::vector<std::string> in_use;  ///< resource URIs (a package's names its root digest)

  /// "nodes/<host>-<12 hex digits of the home's SHA-256>", the host reduced to the characters a
  /// record name may hold.
  static std::string name_for(std::string_view host, std::string_view home);

  bool operator==(const NodeReportRecord&) const = default;
};

/// The record's text, as written to the store; its parser reads it back to an equal value (for
/// strings that are UTF-8: other bytes are replaced). Never throws.
std::string record_text(const PublishedVenvRecord& record);
std::string record_text(const UrlRecord& record);
std::string record_text(const LeaseRecord& record);
std::string record_text(const NodeReportRecord& record);

/// kCorrupt unless `text` is a JSON object of format PublishedVenvRecord::kFormat whose
/// "package" is a package URI and whose other fields, when present, have their types (absent
/// strings are empty, an absent system_site_packages is true). Unknown keys are ignored. Says
/// nothing of whether the record can be believed (see python_env.cc, docs/cluster.md).
Result<PublishedVenvRecord> parse_published_venv_record(std::string_view text);
/// kCorrupt unless `text` is a JSON object with a string "uri" ("url", optional, a string).
Result<UrlRecord> parse_url_record(std::string_view text);
/// kCorrupt unless `text` is a JSON object with a string "holder" and an integer "expires_ms".
Result<LeaseRecord> parse_lease_record(std::string_view text);
/// kCorrupt unless `text` (at most 1 MiB) is a JSON object with strings "node" and "home", an
/// integer "written_ms" and "in_use" a list of strings.
Result<NodeReportRecord> parse_node_report_record(std::string_view text);

}  // namespace rtenv::env
