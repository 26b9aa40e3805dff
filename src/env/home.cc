#include "env/home.h"

#include <sys/stat.h>
#include <unistd.h>
#include <cerrno>

#include "util/digest.h"
#include "util/fs.h"

namespace rtenv::env {

namespace {

Result<Home> open_home(const fs::path& root, std::shared_ptr<const config::Config> config) {
  if (!root.is_absolute()) {
    return make_error(ErrorCode::kInvalidArgument, "RTENV_HOME must be an absolute path, got '{}'",
                      root.string());
  }
  Home home{root.lexically_normal(), std::move(config)};
  // A new home is its owner's alone (0700): what it holds (the agent's database of envs and
  // holders, packages, locks with index URLs) is not for other users of the node.
  struct stat st;
  if (::stat(home.root.c_str(), &st) != 0) {
    RTENV_TRY(make_dirs(home.root.parent_path()));
    if (::mkdir(home.root.c_str(), 0700) != 0 && errno != EEXIST) {
      return io_error("cannot create", home.root, errno);
    }
  } else if (st.st_uid != ::geteuid() && ::geteuid() != 0) {
    // In a directory every user can write to (/var/tmp/rtenv-%u on a node), another user could
    // have made it first: their home would see this user's envs and hand them their files.
    return make_error(ErrorCode::kUnsafe,
                      "RTENV_HOME {} belongs to another user (uid {}), not to you (uid {}); use "
                      "a home of your own",
                      home.root.string(), st.st_uid, ::geteuid());
  }
  for (const auto& dir : {home.store(), home.pkgs(), home.index(), home.tmp(), home.logs(),
                          home.pyenvs(), home.python(), home.locks()}) {
    RTENV_TRY(make_dirs(dir));
  }
  return home;
}

}  // namespace

const config::Config& Home::config() const {
  if (config_ptr) return *config_ptr;
  // A Home made by hand (Home{root}): the defaults for its root.
  static thread_local std::map<fs::path, std::shared_ptr<const config::Config>> defaults;
  auto& c = defaults[root];
  if (!c) c = std::make_shared<const config::Config>(config::Config::defaults(root));
  return *c;
}

Result<Home> Home::at(const fs::path& root) {
  if (!root.is_absolute()) return open_home(root, nullptr);
  return open_home(root, std::make_shared<const config::Config>(config::Config::defaults(root)));
}

Result<Home> Home::from_config(std::shared_ptr<const config::Config> config) {
  fs::path root = config->home();
  return open_home(root, std::move(config));
}

fs::path Home::index_for(const fs::path& root) const {
  return index() / (Digest::of(root.string()).hex() + ".idx");
}

std::string Home::store_url() const { return config().store(); }

}  // namespace rtenv::env
