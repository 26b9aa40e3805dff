#pragma once
// The built-in fields (docs/runtime_env.md), each a Field; registry.cc lists them.

#include <memory>
#include <vector>

#include "env/exec_plugin.h"
#include "env/field.h"

namespace rtenv::env::fields {

std::shared_ptr<const Field> env_vars();
std::shared_ptr<const Field> excludes();
std::shared_ptr<const Field> config();
std::shared_ptr<const Field> working_dir();
std::shared_ptr<const Field> py_modules();
std::shared_ptr<const Field> pip();
std::shared_ptr<const Field> uv();
/// The process's interpreter: the base of the pip/uv venv, or alone a bin/ of python launchers
/// (PythonEnvRequest::make_launcher) first on PATH and the plan's py_executable.
std::shared_ptr<const Field> py_executable();
std::shared_ptr<const Field> java_jars();
/// conda envs: an existing env by name or directory, or a dict solved into a lock on the
/// submitting side and installed per node (its kind: conda_kind).
std::shared_ptr<const Field> conda();
/// Stops conda's helper process, if this process runs one (Registry::stop_helpers).
void stop_helpers();
/// The node's conda envs, one per lock (conda://<key>), read from `store`.
std::unique_ptr<ResourceKind> conda_kind(const Home& home, store::BlobStore& store);
/// The field of an exec plugin: validate asks the program (unless the value's resource is
/// published on the node already); a value is one resource of the plugin's kind
/// (ExecPluginKind); its launch-plan contribution is the `context` answer kept beside it.
std::shared_ptr<const Field> exec_plugin(PluginSpec spec);
/// image_uri and container: the process runs inside the image (docs/images.md).
std::shared_ptr<const Field> image_uri();
std::shared_ptr<const Field> container();
/// The node's images, one per manifest (image://sha256/<hex>), read from `store`.
std::unique_ptr<ResourceKind> image_kind(const Home& home, store::BlobStore& store);
/// A field that is validated but has no installer in this version: setup fails with "not
/// supported yet: <name> (<what>)".
std::shared_ptr<const Field> not_supported_yet(const char* name, const char* what);

}  // namespace rtenv::env::fields

namespace rtenv::env {

/// Unpacks the layer blob at `blob` into the new directory `dest` (pack::extract_layer), its
/// files adding up to at most `max_bytes`. Set by the binaries that carry libarchive
/// (enable_image_layers); unset, a node cannot unpack layers.
using LayerExtractor =
    std::function<Result<void>(const fs::path& blob, const fs::path& dest, uint64_t max_bytes)>;
void set_layer_extractor(LayerExtractor extractor);

/// If `dir` holds exactly one entry and it is a directory, returns that directory (remote zips
/// made with `zip -r x.zip project/` carry such a wrapper); otherwise `dir`.
fs::path single_top_level_dir(const fs::path& dir);

}  // namespace rtenv::env
