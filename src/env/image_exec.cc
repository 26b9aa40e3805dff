#include "env/image_exec.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <vector>

namespace rtenv::env {

namespace {

constexpr int kExitCannotEnter = 125;
constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

int fail(const std::string& what) {
  std::fprintf(stderr, "rtenv: cannot start the command in the image: %s: %s\n", what.c_str(),
               std::strerror(errno));
  return kExitCannotEnter;
}

bool write_proc(const char* path, const std::string& text) {
  int fd = ::open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  return ok;
}

// Makes `rel` (an absolute path inside the image) exist below `root` as a directory or an empty
// file, for a mount. Every component is opened without following symlinks: false (nothing made)
// if one is a symlink or not a directory, since the image's own links must never lead a mount or
// a new file to the host's tree.
bool make_mount_point(const std::string& root, const std::string& rel, bool dir) {
  int cur = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (cur < 0) return false;
  std::vector<std::string> parts;
  for (const auto& c : fs::path(rel).relative_path()) {
    if (c == "..") {
      ::close(cur);
      return false;
    }
    if (!c.empty() && c != ".") parts.push_back(c.string());
  }
  bool ok = true;
  for (size_t i = 0; ok && i < parts.size(); ++i) {
    const char* name = parts[i].c_str();
    bool last = i + 1 == parts.size();
    if (last && !dir) {
      int fd = ::openat(cur, name, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
      ok = fd >= 0;
      if (fd >= 0) ::close(fd);
      break;
    }
    if (::mkdirat(cur, name, 0755) != 0 && errno != EEXIST) ok = false;
    int next = ok ? ::openat(cur, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) : -1;
    ::close(cur);
    cur = next;
    ok = cur >= 0;
  }
  if (cur >= 0) ::close(cur);
  return ok;
}

// Overlay options need ',' ':' and '\' escaped in paths.
std::string escape_overlay(const std::string& path) {
  std::string out;
  for (char c : path) {
    if (c == ',' || c == ':' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

}  // namespace

std::vector<std::string> image_exec_wrapper(const ImageExec& exec) {
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  fs::path front = self.parent_path() / "rtenv";
  fs::path binary = !ec && fs::exists(front, ec) ? front : self;
  std::vector<std::string> argv{
      binary.string(), "image-exec",          "--rootfs", exec.rootfs.string(),
      "--scratch",     exec.scratch.string(), "--cwd",    exec.cwd};
  for (const auto& e : exec.entrypoint) argv.insert(argv.end(), {"--entrypoint", e});
  for (const auto& c : exec.default_cmd) argv.insert(argv.end(), {"--cmd", c});
  for (const auto& b : exec.binds) argv.insert(argv.end(), {"--bind", b.string()});
  argv.push_back("--");
  return argv;
}

int image_exec_main(int argc, char** argv) {
  ImageExec exec;
  std::vector<std::string> command;
  int i = 2;
  for (; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--") {
      ++i;
      break;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "rtenv image-exec: %s needs a value\n", argv[i]);
      return kExitCannotEnter;
    }
    std::string v = argv[++i];
    if (a == "--rootfs") {
      exec.rootfs = v;
    } else if (a == "--scratch") {
      exec.scratch = v;
    } else if (a == "--cwd") {
      exec.cwd = v;
    } else if (a == "--entrypoint") {
      exec.entrypoint.push_back(v);
    } else if (a == "--cmd") {
      exec.default_cmd.push_back(v);
    } else if (a == "--bind") {
      exec.binds.emplace_back(v);
    } else {
      std::fprintf(stderr, "rtenv image-exec: unknown option %s\n", argv[i - 1]);
      return kExitCannotEnter;
    }
  }
  for (; i < argc; ++i) command.emplace_back(argv[i]);
  if (exec.rootfs.empty() || exec.scratch.empty()) {
    std::fprintf(stderr, "rtenv image-exec: --rootfs and --scratch are required\n");
    return kExitCannotEnter;
  }
  std::vector<std::string> args = exec.entrypoint;
  const auto& tail = command.empty() ? exec.default_cmd : command;
  args.insert(args.end(), tail.begin(), tail.end());
  if (args.empty()) {
    std::fprintf(stderr, "rtenv: the image has no Entrypoint or Cmd, and no command was given\n");
    return kExitCannotEnter;
  }

  const uid_t uid = ::getuid();
  const gid_t gid = ::getgid();
  if (::unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) {
    return fail(
        "entering a new user and mount namespace (are unprivileged user namespaces "
        "enabled? sysctl kernel.unprivileged_userns_clone / user.max_user_namespaces)");
  }
  if (!write_proc("/proc/self/setgroups", "deny") ||
      !write_proc("/proc/self/uid_map", "0 " + std::to_string(uid) + " 1") ||
      !write_proc("/proc/self/gid_map", "0 " + std::to_string(gid) + " 1")) {
    return fail("mapping the user into the namespace");
  }
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return fail("making mounts private");
  }
  const std::string scratch = exec.scratch.string();
  if (::mount("tmpfs", scratch.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") != 0) {
    return fail("mounting a tmpfs on " + scratch);
  }
  const std::string upper = scratch + "/upper", work = scratch + "/work", root = scratch + "/root";
  for (const auto& d : {upper, work, root}) ::mkdir(d.c_str(), 0755);
  std::string options = "lowerdir=" + escape_overlay(exec.rootfs.string()) +
                        ",upperdir=" + escape_overlay(upper) + ",workdir=" + escape_overlay(work);
  if (::mount("overlay", root.c_str(), "overlay", MS_NODEV, options.c_str()) != 0) {
    // Without overlay the image is read-only (nothing in it may change: its files are the
    // node's shared layers).
    if (::mount(exec.rootfs.c_str(), root.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0 ||
        ::mount(nullptr, root.c_str(), nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY, nullptr) != 0) {
      return fail("mounting the image's root " + exec.rootfs.string());
    }
  }
  struct HostMount {
    const char* path;
    bool dir;
  };
  for (HostMount m : {HostMount{"/proc", true}, HostMount{"/dev", true}, HostMount{"/sys", true},
                      HostMount{"/etc/resolv.conf", false}, HostMount{"/etc/hosts", false}}) {
    struct stat st;
    if (::stat(m.path, &st) != 0) continue;
    std::string target = root + m.path;
    // /sys and the /etc files are conveniences; /proc and /dev are not.
    bool needed = m.dir && std::string_view(m.path) != "/sys";
    if (!make_mount_point(root, m.path, m.dir) ||
        ::mount(m.path, target.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0) {
      if (needed)
        return fail(std::string("binding ") + m.path + " (is it a symlink in the image?)");
    }
  }
  // The private /tmp before the binds: a bound directory may be under /tmp on the host.
  std::string tmp = root + "/tmp";
  if (!make_mount_point(root, "/tmp", true) ||
      ::mount("tmpfs", tmp.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777") != 0) {
    return fail("mounting a tmpfs on /tmp (is it a symlink in the image?)");
  }
  for (const auto& b : exec.binds) {
    std::string target = root + b.string();
    if (!make_mount_point(root, b.string(), true) ||
        ::mount(b.c_str(), target.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0) {
      return fail("binding " + b.string() + " (does the image have a symlink on its path?)");
    }
  }
  if (::chdir(root.c_str()) != 0) return fail("entering " + root);
  if (::syscall(SYS_pivot_root, ".", ".") != 0) return fail("pivot_root");
  if (::umount2(".", MNT_DETACH) != 0) return fail("detaching the host's root");
  if (::chdir(exec.cwd.c_str()) != 0) return fail("changing to the working directory " + exec.cwd);
  if (!std::getenv("PATH")) ::setenv("PATH", kDefaultPath, 1);

  std::vector<char*> cargv;
  for (auto& a : args) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  ::execvp(cargv[0], cargv.data());
  int err = errno;
  std::fprintf(stderr, "rtenv: %s: %s (inside the image)\n", args[0].c_str(), std::strerror(err));
  return err == ENOENT ? 127 : 126;
}

}  // namespace rtenv::env
