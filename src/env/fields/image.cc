// image_uri and container: the process runs inside a container image's root filesystem. On the
// submitting side the image's manifest, config and layers go into the store and the value is
// pinned to the manifest's digest; on a node each layer is unpacked once (images/layers/), each
// image's rootfs assembled once from them by hard links (images/roots/), and the command started
// by `rtenv image-exec` (env/image_exec.h) inside it. docs/images.md.

#include <unistd.h>

#include <algorithm>
#include <mutex>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "env/fields/fields.h"
#include "env/image_exec.h"
#include "env/image_import.h"
#include "env/image_rootfs.h"
#include "env/node_cache.h"
#include "env/published_dirs.h"
#include "util/clock.h"
#include "util/fs.h"

namespace rtenv::env {

namespace {

using Json = nlohmann::json;

constexpr std::string_view kUriPrefix = "image://sha256/";
constexpr const char* kConfigSidecar = ".image.json";

std::mutex g_extractor_mutex;
LayerExtractor g_extractor;

LayerExtractor layer_extractor() {
  std::lock_guard lock(g_extractor_mutex);
  return g_extractor;
}

// The directories and files image-exec mounts over, when the image has none: a real directory
// (or file) replaces nothing the image has, since entries of other types are left alone.
Result<void> make_mount_points(const fs::path& rootfs) {
  for (const char* d : {"proc", "dev", "sys", "tmp", "etc"}) {
    std::error_code ec;
    if (!fs::exists(fs::symlink_status(rootfs / d, ec))) RTENV_TRY(make_dirs(rootfs / d));
  }
  for (const char* f : {"etc/resolv.conf", "etc/hosts"}) {
    std::error_code ec;
    if (fs::is_directory(fs::symlink_status(rootfs / "etc", ec)) &&
        !fs::exists(fs::symlink_status(rootfs / f, ec))) {
      RTENV_TRY(write_new_file(rootfs / f, "", 0644));
    }
  }
  return ok_result();
}

/// Images on this node: $RTENV_HOME/images/roots/<manifest hex>/ (rootfs/, the assembled tree;
/// layers, the digests it was assembled from; mnt/, where image-exec mounts its overlay) with
/// <hex>.lock, <hex>.image.json (what the image says about running it) and <hex>.ready; and the
/// layers each unpacked once, images/layers/<layer hex>/, whose files the roots hard-link. A
/// layer goes with the last root that names it.
class ImageKind : public PublishedDirsKind {
 public:
  ImageKind(const Home& home, store::BlobStore& store)
      : PublishedDirsKind(
            std::string(kUriPrefix),
            PublishedDirs(home.root / "images" / "roots", home.tmp(), ".ready", {kConfigSidecar})),
        home_(home),
        store_(store),
        layers_(home.root / "images" / "layers", home.tmp(), ".ready") {}

  std::string name() const override { return "image"; }

  Result<bool> ensure(const Resource& r, const InstallProgress& progress,
                      int64_t timeout_ms) override {
    const int64_t deadline = deadline_after(timeout_ms);
    return dirs().make_once(key(r.uri), deadline, r.uri, maker(r.uri, progress, deadline));
  }
  Result<std::unique_ptr<ResourceLease>> acquire(const Resource& r, const InstallProgress& progress,
                                                 int64_t timeout_ms) override {
    const int64_t deadline = deadline_after(timeout_ms);
    RTENV_ASSIGN_OR_RETURN(
        FileLock lock, dirs().lease(key(r.uri), deadline, r.uri, maker(r.uri, progress, deadline)));
    return std::unique_ptr<ResourceLease>(new DirLease(std::move(lock)));
  }
  Result<bool> evict(const std::string& uri) override {
    if (!owns(uri)) return false;
    std::vector<std::string> layers;
    RTENV_ASSIGN_OR_RETURN(bool evicted, dirs().evict(key(uri), [&](const fs::path& dir) {
      layers = layers_of(dir);
    }));
    if (!evicted) return false;
    // A layer no other image names goes too (unless a build holds it right now).
    std::set<std::string> still_named;
    for (const auto& other : dirs().list_ready()) {
      for (auto& l : layers_of(dirs().dir(other))) still_named.insert(std::move(l));
    }
    for (const auto& l : layers) {
      if (!still_named.contains(l)) RTENV_TRY(layers_.evict(l));
    }
    return true;
  }

  /// What the ready image `uri` says about running it.
  Result<OciImageConfig> image_config(const std::string& uri) const {
    auto text = read_file(dirs().sidecar(key(uri), kConfigSidecar));
    if (!text) return text.error().with_context("image " + uri);
    return parse_oci_config(*text, "image " + uri + ": kept config");
  }

 private:
  static std::vector<std::string> layers_of(const fs::path& root_dir) {
    std::vector<std::string> out;
    auto text = read_file(root_dir / "layers");
    if (!text) return out;
    size_t start = 0;
    while (start < text->size()) {
      size_t nl = text->find('\n', start);
      if (nl == std::string::npos) nl = text->size();
      std::string line = text->substr(start, nl - start);
      if (Digest::from_hex(line)) out.push_back(std::move(line));
      start = nl + 1;
    }
    return out;
  }

  // Unpacks one layer (verified from the store) into `dir`.
  Result<void> unpack_layer(const OciDescriptor& layer, const fs::path& dir) const {
    LayerExtractor extract = layer_extractor();
    if (!extract) {
      return make_error(ErrorCode::kUnsupported,
                        "unpacking image layers needs rtenv-full (or the node's agent)");
    }
    RTENV_TRY(make_dirs(home_.tmp()));
    fs::path blob = home_.tmp() / unique_name("layer");
    auto got = store_.get_to_file(layer.digest, blob, 0600, layer.size);
    if (!got) return got.error().with_context("reading layer " + oci_digest(layer.digest));
    auto extracted = extract(blob, dir, home_.config().max_package_size());
    std::error_code ec;
    fs::remove(blob, ec);
    if (!extracted) return extracted.error().with_context("layer " + oci_digest(layer.digest));
    return ok_result();
  }

  PublishedDirs::Make maker(const std::string& uri, const InstallProgress& progress,
                            int64_t deadline) const {
    return [this, uri, &progress, deadline](const fs::path& dir) -> Result<void> {
      RTENV_ASSIGN_OR_RETURN(Digest digest, Digest::from_hex(key(uri)));
      auto manifest_text = store_.get(digest);
      if (!manifest_text) {
        return manifest_text.error().with_context(
            "image " + oci_digest(digest) +
            ": reading its manifest from the store (submit the "
            "env with rtenv, which puts the image there)");
      }
      RTENV_ASSIGN_OR_RETURN(OciManifest manifest,
                             parse_oci_manifest(*manifest_text, "image " + oci_digest(digest)));
      RTENV_ASSIGN_OR_RETURN(std::string config_text, store_.get(manifest.config.digest));
      RTENV_TRY(parse_oci_config(config_text, "image " + oci_digest(digest) + ": config"));
      RTENV_TRY(make_dirs(dir));
      std::vector<FileLock> held;  // each layer stays while its files are linked
      std::vector<fs::path> layer_dirs;
      std::string layer_list;
      size_t n = 0;
      for (const auto& layer : manifest.layers) {
        ++n;
        if (progress) {
          progress(fmt::format("image layer {}/{} ({})", n, manifest.layers.size(),
                               oci_digest(layer.digest).substr(0, 19)));
        }
        std::string name = layer.digest.hex();
        RTENV_ASSIGN_OR_RETURN(
            FileLock lock, layers_.lease(name, deadline, "image layer " + oci_digest(layer.digest),
                                         [&](const fs::path& layer_dir) {
                                           return unpack_layer(layer, layer_dir);
                                         }));
        held.push_back(std::move(lock));
        layer_dirs.push_back(layers_.dir(name));
        layer_list += name + "\n";
      }
      if (progress) progress("assembling the image's root filesystem");
      RTENV_TRY(assemble_rootfs(layer_dirs, dir / "rootfs"));
      // Where image-exec mounts the host's, made now so that a read-only root (no overlay) has
      // them too.
      RTENV_TRY(make_mount_points(dir / "rootfs"));
      RTENV_TRY(make_dirs(dir / "mnt"));
      RTENV_TRY(write_file_atomic(dir / "layers", layer_list));
      RTENV_TRY(write_file_atomic(dirs().sidecar(key(uri), kConfigSidecar), config_text));
      return ok_result();
    };
  }

  Home home_;
  store::BlobStore& store_;
  PublishedDirs layers_;
};

// The image reference a value names: image_uri's string, container's "image".
Result<std::string> image_text(const Json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_object() && value.contains("image") && value["image"].is_string()) {
    return value["image"].get<std::string>();
  }
  return make_error(ErrorCode::kInvalidArgument, "expected an image reference");
}

// What container.run_options says, of what rtenv can do.
struct RunOptions {
  std::vector<std::pair<std::string, std::string>> env;
  std::string workdir;
};

Result<RunOptions> parse_run_options(const Json& value) {
  RunOptions out;
  if (!value.is_object() || !value.contains("run_options")) return out;
  const Json& list = value["run_options"];
  if (!list.is_array()) return out;
  std::vector<std::string> args;
  for (const auto& a : list) {
    if (a.is_string()) args.push_back(a.get<std::string>());
  }
  for (size_t i = 0; i < args.size(); ++i) {
    std::string opt = args[i], arg;
    bool has_arg = false;
    if (size_t eq = opt.find('='); opt.starts_with("--") && eq != std::string::npos) {
      arg = opt.substr(eq + 1);
      opt = opt.substr(0, eq);
      has_arg = true;
    }
    bool takes = opt == "-e" || opt == "--env" || opt == "-w" || opt == "--workdir";
    if (!takes) {
      return make_error(ErrorCode::kUnsupported,
                        "runtime_env.container.run_options: '{}' is not supported (rtenv takes "
                        "-e/--env NAME=value and -w/--workdir DIR)",
                        args[i]);
    }
    if (!has_arg) {
      if (i + 1 >= args.size()) {
        return make_error(ErrorCode::kInvalidArgument,
                          "runtime_env.container.run_options: '{}' needs a value", opt);
      }
      arg = args[++i];
    }
    if (opt == "-e" || opt == "--env") {
      size_t eq = arg.find('=');
      if (eq == std::string::npos || eq == 0) {
        return make_error(ErrorCode::kInvalidArgument,
                          "runtime_env.container.run_options: '{} {}' is not NAME=value", opt, arg);
      }
      out.env.emplace_back(arg.substr(0, eq), arg.substr(eq + 1));
    } else {
      if (arg.empty() || arg[0] != '/') {
        return make_error(ErrorCode::kInvalidArgument,
                          "runtime_env.container.run_options: '{} {}' needs an absolute path", opt,
                          arg);
      }
      out.workdir = arg;
    }
  }
  return out;
}

class ImageField : public Field {
 public:
  explicit ImageField(const char* name) : name_(name) {}
  std::string name() const override { return name_; }
  int priority() const override { return 8; }

  bool needs_zip_support(const Json& value) const override {
    auto text = image_text(value);
    if (!text) return false;
    auto ref = ImageRef::parse(*text);
    // A pinned image is usually in the store already (prepare then reads no source): the lean
    // binary tries, and hands the run over through import_image when it is not.
    return ref && ref->source != ImageRef::Source::kOciLayout && !ref->digest;
  }

  Result<Json> prepare(const Json& value, const PrepareContext& ctx) const override {
    RTENV_ASSIGN_OR_RETURN(std::string text, image_text(value));
    auto ref = ImageRef::parse(text);
    if (!ref) return ref.error().with_context("runtime_env." + name_);
    RTENV_TRY(parse_run_options(value));
    Digest pinned;
    bool in_store = false;
    if (ref->digest) {
      RTENV_ASSIGN_OR_RETURN(std::vector<bool> absent, ctx.store.missing({*ref->digest}));
      in_store = !absent[0];
    }
    if (in_store) {
      pinned = *ref->digest;  // put there by whoever pinned it, with all it names
    } else if (ref->source == ImageRef::Source::kOciLayout) {
      OciLayoutSource source(ref->path, ref->to_string());
      auto imported = import_image(source, *ref, ctx.store, ctx.home.tmp(), ctx.options.report);
      if (!imported) return imported.error();
      pinned = imported->manifest;
    } else {
      if (!ctx.options.import_image) {
        return make_error(
            ErrorCode::kUnsupported,
            "runtime_env.{}: image {} needs rtenv-full (registry and archive support)", name_,
            text);
      }
      RTENV_ASSIGN_OR_RETURN(pinned, ctx.options.import_image(text, ctx.store));
    }
    Json out = value;
    if (value.is_string()) return Json(ref->pinned(pinned));
    out["image"] = ref->pinned(pinned);
    return out;
  }

  Result<void> resources(const Json& value, const spec::RuntimeEnv&, const NodeCache&,
                         std::vector<Resource>* out) const override {
    RTENV_ASSIGN_OR_RETURN(std::string text, image_text(value));
    RTENV_ASSIGN_OR_RETURN(ImageRef ref, ImageRef::parse(text));
    if (!ref.digest) {
      return make_error(ErrorCode::kInvalidArgument,
                        "runtime_env.{}: image {} is not pinned to a digest; submit the env with "
                        "rtenv, which pins it",
                        name_, text);
    }
    Resource r;
    r.field = name_;
    r.uri = std::string(kUriPrefix) + ref.digest->hex();
    out->push_back(std::move(r));
    return ok_result();
  }

  Result<void> contribute(const Json& value, const spec::RuntimeEnv& env, const NodeCache& cache,
                          const std::vector<Resource>& mine, LaunchPlan* plan) const override {
    const auto* kind =
        mine.size() == 1 ? dynamic_cast<const ImageKind*>(cache.kind_of(mine[0].uri)) : nullptr;
    if (!kind) return make_error(ErrorCode::kInternal, "runtime_env.{}: no planned image", name_);
    RTENV_ASSIGN_OR_RETURN(OciImageConfig config, kind->image_config(mine[0].uri));
    RTENV_ASSIGN_OR_RETURN(RunOptions options, parse_run_options(value));
    // The image's Env over the caller's environment; env_vars (and run_options' --env) over it.
    auto user_vars = env.env_vars();
    for (const auto& e : config.env) {
      size_t eq = e.find('=');
      std::string name = e.substr(0, eq);
      if (user_vars.count(name)) continue;
      plan->set(name, e.substr(eq + 1));
    }
    for (const auto& [name, v] : options.env) {
      if (!user_vars.count(name)) plan->set(name, v);
    }
    ImageExec exec;
    exec.rootfs = kind->dir_of(mine[0].uri) / "rootfs";
    exec.scratch = kind->dir_of(mine[0].uri) / "mnt";
    // working_dir and py_modules (which contribute before this field): their node copies are
    // bound at the same paths inside, and the working_dir is the cwd there too.
    for (const auto& op : plan->env) {
      if (op.name != "PYTHONPATH" ||
          (op.kind != EnvOp::Kind::kPrepend && op.kind != EnvOp::Kind::kAppend)) {
        continue;
      }
      for (const auto& v : op.values) {
        std::error_code ec;
        if (fs::path(v).is_absolute() && fs::is_directory(v, ec) &&
            std::find(exec.binds.begin(), exec.binds.end(), fs::path(v)) == exec.binds.end()) {
          exec.binds.emplace_back(v);
        }
      }
    }
    if (plan->cwd &&
        std::find(exec.binds.begin(), exec.binds.end(), *plan->cwd) == exec.binds.end()) {
      exec.binds.push_back(*plan->cwd);
    }
    exec.cwd = plan->cwd                     ? plan->cwd->string()
               : !options.workdir.empty()    ? options.workdir
               : !config.working_dir.empty() ? config.working_dir
                                             : "/";
    exec.entrypoint = config.entrypoint;
    exec.default_cmd = config.cmd;
    std::vector<std::string> wrapper = image_exec_wrapper(exec);
    plan->wrapper.insert(plan->wrapper.end(), wrapper.begin(), wrapper.end());
    return ok_result();
  }

 private:
  std::string name_;
};

}  // namespace

void set_layer_extractor(LayerExtractor extractor) {
  std::lock_guard lock(g_extractor_mutex);
  g_extractor = std::move(extractor);
}

namespace fields {
std::shared_ptr<const Field> image_uri() { return std::make_shared<ImageField>("image_uri"); }
std::shared_ptr<const Field> container() { return std::make_shared<ImageField>("container"); }
std::unique_ptr<ResourceKind> image_kind(const Home& home, store::BlobStore& store) {
  return std::make_unique<ImageKind>(home, store);
}
}  // namespace fields

}  // namespace rtenv::env
