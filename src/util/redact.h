#pragma once
// Keeping secrets out of logs, errors and listings.

#include <string>
#include <string_view>

namespace rtenv {

/// `text` with the credentials of every URL in it hidden: "https://user:pw@host/x" becomes
/// "https://user:****@host/x" and "https://token@host" becomes "https://****@host".
std::string redact_url_credentials(std::string_view text);

/// One line of another program's output made safe to show: terminal escape sequences
/// (ESC ... letter) and carriage returns removed, trailing whitespace trimmed, URL credentials
/// hidden.
std::string printable_line(std::string_view line);

/// `text` for one line of a log: control characters (a newline, an escape, DEL) written as
/// `\xNN`, so what a client sent cannot forge or hide log lines.
std::string log_escaped(std::string_view text);

}  // namespace rtenv
