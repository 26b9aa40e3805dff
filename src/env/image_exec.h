#pragma once
// Starting a command inside an image's root filesystem, rootless: `rtenv image-exec` (the
// wrapper of an image's launch plan) enters a new user and mount namespace (the caller's uid
// and gid mapped to 0), mounts an overlay with a private tmpfs upper layer over the read-only
// rootfs (a read-only bind if the kernel refuses the overlay), binds the host's /proc, /dev and
// /sys, a tmpfs on /tmp, the host's /etc/resolv.conf and /etc/hosts, pivots into it and execs the
// command in place, so its pid, signals, stdio and exit status are the ones `rtenv run` sees
// without an image.

#include <filesystem>
#include <string>
#include <vector>

namespace rtenv::env {

namespace fs = std::filesystem;

struct ImageExec {
  fs::path rootfs;        ///< the assembled root (never written: mounted under an overlay)
  fs::path scratch;       ///< an empty directory to mount the private tmpfs on
  std::string cwd = "/";  ///< inside the image
  std::vector<std::string> entrypoint, default_cmd;  ///< the image's Entrypoint and Cmd
  std::vector<fs::path> binds;  ///< host directories mounted at the same paths inside
};

/// The wrapper argv: the `rtenv` binary beside this one, "image-exec", the options, "--". The
/// command follows; the image's Entrypoint goes in front of it, and an empty command is its Cmd.
std::vector<std::string> image_exec_wrapper(const ImageExec& exec);

/// `rtenv image-exec ...` (argv as main got it, argv[1] == "image-exec"). Returns only on
/// failure: 125 after a message on stderr when the image cannot be entered, 127 when the command
/// is not found, 126 when it cannot be run.
int image_exec_main(int argc, char** argv);

}  // namespace rtenv::env
