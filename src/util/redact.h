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

}  // namespace rtenv
