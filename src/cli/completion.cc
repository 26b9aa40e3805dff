// `rtenv completion bash|zsh`: a shell completion script written from the command tree itself,
// so it cannot fall behind the commands and flags the binary has.

#include <string>
#include <vector>

#include <fmt/format.h>

#include "cli/commands.h"

namespace rtenv::cli {
namespace {

struct Node {
  std::string path;                     // " env create": the words after `rtenv`
  std::vector<std::string> words;       // its subcommands and flags
  std::vector<std::string> value_opts;  // flags that take a value (complete files after them)
};

void collect(const CLI::App& app, const std::string& path, std::vector<Node>* out) {
  Node node;
  node.path = path;
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
    node.words.push_back(sub->get_name());
  }
  for (const CLI::Option* opt : app.get_options()) {
    if (!opt->nonpositional()) continue;
    std::vector<std::string> names;
    for (const auto& l : opt->get_lnames()) names.push_back("--" + l);
    for (const auto& s : opt->get_snames()) names.push_back("-" + s);
    for (const auto& n : names) {
      node.words.push_back(n);
      if (opt->get_expected_min() > 0) node.value_opts.push_back(n);
    }
  }
  out->push_back(std::move(node));
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
    collect(*sub, path + " " + sub->get_name(), out);
  }
}

std::string joined(const std::vector<std::string>& words, const char* sep) {
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : sep) + w;
  return out;
}

}  // namespace

int completion_command(const CLI::App& app, const std::string& shell) {
  if (shell != "bash" && shell != "zsh") {
    return fail(kExitUsage, "completion: the shells are bash and zsh, not '" + shell + "'");
  }
  std::vector<Node> nodes;
  collect(app, "", &nodes);
  std::string paths, words, values;
  for (const auto& n : nodes) {
    if (!n.path.empty())
      paths += fmt::format("      \"{}\") path=\"$path $w\"; continue ;;\n", n.path);
    words += fmt::format("    \"{}\") words=\"{}\" ;;\n", n.path, joined(n.words, " "));
    if (!n.value_opts.empty()) {
      values += fmt::format("    \"{}\") values=\"{}\" ;;\n", n.path, joined(n.value_opts, " "));
    }
  }
  std::string script;
  if (shell == "zsh") {
    // zsh runs bash completion functions through bashcompinit.
    script += "autoload -U +X compinit && compinit\nautoload -U +X bashcompinit && bashcompinit\n";
  }
  script += fmt::format(
      R"SH(# rtenv completion for {0}: eval "$(rtenv completion {0})", e.g. in ~/.{0}rc
_rtenv() {{
  # zsh (bashcompinit): the words counted from 0, as bash counts them.
  [[ -n ${{ZSH_VERSION-}} ]] && setopt localoptions ksharrays
  local cur="${{COMP_WORDS[COMP_CWORD]}}" path="" w values words i
  local -a after=()
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="${{COMP_WORDS[i]}}"
    # `--` ends rtenv's arguments: the job's command follows (files, as the shell completes them).
    [[ $w == -- ]] && return 0
    case "$path $w" in
{1}    esac
    values=""
    case "$path" in
{3}    esac
    # The value of a flag that takes one is not a command word.
    if [[ " $values " == *" $w "* ]]; then ((i++)); continue; fi
    # `rtenv run ... COMMAND`: from the job's command on, the shell completes as usual.
    [[ $path == " run" && $w != -* ]] && return 0
  done
  values=""
  case "$path" in
{3}  esac
  if [[ " $values " == *" ${{COMP_WORDS[COMP_CWORD-1]}} "* ]]; then
    return 0  # a flag's value: files (complete -o default)
  fi
  case "$path" in
{2}    *) words="" ;;
  esac
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}}
complete -o default -F _rtenv rtenv
)SH",
      shell, paths, words, values);
  std::fputs(script.c_str(), stdout);
  return 0;
}

}  // namespace rtenv::cli
