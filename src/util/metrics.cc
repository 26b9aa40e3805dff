#include "util/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include <fmt/format.h>

namespace rtenv::metrics {

namespace {

bool is_metric_name(std::string_view name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

bool is_label_name(std::string_view name) {
  if (name.empty() || name.starts_with("__") || name == "le") return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

// HELP text: `\` and newline escaped (quotes are fine there).
std::string escape_help(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void header(std::string* out, const Family& f, std::string_view type) {
  *out +=
      fmt::format("# HELP {} {}\n# TYPE {} {}\n", f.name(), escape_help(f.help()), f.name(), type);
}

}  // namespace

std::string escape_label_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  // Whole numbers (every counter, byte counts) as integers, exactly, up to 2^63.
  if (v == std::floor(v) && std::fabs(v) < 9.2e18) {
    return std::to_string(static_cast<int64_t>(v));
  }
  return fmt::format("{}", v);
}

std::vector<double> duration_buckets() {
  return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800};
}

// ---- Family -----------------------------------------------------------------------------------

Family::Family(std::string name, std::string help, std::vector<std::string> label_names)
    : name_(std::move(name)), help_(std::move(help)), label_names_(std::move(label_names)) {}

void Family::check_arity(const LabelValues& values) const {
  if (values.size() != label_names_.size()) {
    throw std::logic_error(fmt::format("metric {} takes {} label value(s), given {}", name_,
                                       label_names_.size(), values.size()));
  }
}

void Family::sample(std::string* out, std::string_view suffix, const LabelValues& values,
                    std::string_view extra_label, std::string_view extra_value,
                    double value) const {
  *out += name_;
  *out += suffix;
  if (!values.empty() || !extra_label.empty()) {
    *out += '{';
    bool first = true;
    auto label = [&](std::string_view n, std::string_view v) {
      if (!first) *out += ',';
      first = false;
      *out += n;
      *out += "=\"";
      *out += escape_label_value(v);
      *out += '"';
    };
    for (size_t i = 0; i < values.size(); ++i) label(label_names_[i], values[i]);
    if (!extra_label.empty()) label(extra_label, extra_value);
    *out += '}';
  }
  *out += ' ';
  *out += format_value(value);
  *out += '\n';
}

// ---- Counter ----------------------------------------------------------------------------------

void Counter::inc(const LabelValues& values, double by) {
  check_arity(values);
  std::lock_guard lock(mu_);
  double& v = series_[values];
  if (by > 0) v += by;
}

double Counter::value(const LabelValues& values) const {
  std::lock_guard lock(mu_);
  auto it = series_.find(values);
  return it == series_.end() ? 0 : it->second;
}

void Counter::render(std::string* out) const {
  header(out, *this, "counter");
  std::lock_guard lock(mu_);
  for (const auto& [values, v] : series_) sample(out, "", values, {}, {}, v);
}

// ---- Gauge ------------------------------------------------------------------------------------

void Gauge::set(const LabelValues& values, double v) {
  check_arity(values);
  std::lock_guard lock(mu_);
  series_[values] = v;
}

void Gauge::add(const LabelValues& values, double by) {
  check_arity(values);
  std::lock_guard lock(mu_);
  series_[values] += by;
}

double Gauge::value(const LabelValues& values) const {
  std::lock_guard lock(mu_);
  auto it = series_.find(values);
  return it == series_.end() ? 0 : it->second;
}

void Gauge::clear() {
  std::lock_guard lock(mu_);
  series_.clear();
}

void Gauge::render(std::string* out) const {
  header(out, *this, "gauge");
  std::lock_guard lock(mu_);
  for (const auto& [values, v] : series_) sample(out, "", values, {}, {}, v);
}

// ---- Histogram --------------------------------------------------------------------------------

Histogram::Histogram(std::string name, std::string help, std::vector<std::string> label_names,
                     std::vector<double> bounds)
    : Family(std::move(name), std::move(help), std::move(label_names)), bounds_(std::move(bounds)) {
  for (size_t i = 0; i < bounds_.size(); ++i) {
    if (!std::isfinite(bounds_[i]) || (i > 0 && bounds_[i] <= bounds_[i - 1])) {
      throw std::logic_error(
          fmt::format("histogram {}: bucket bounds must be finite and ascending", this->name()));
    }
  }
}

void Histogram::observe(const LabelValues& values, double v) {
  check_arity(values);
  // The first bucket whose bound is >= v (Prometheus buckets are "less or equal").
  size_t bucket = std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin();
  std::lock_guard lock(mu_);
  Series& s = series_[values];
  if (s.buckets.empty()) s.buckets.resize(bounds_.size() + 1);
  ++s.buckets[bucket];
  s.sum += v;
  ++s.count;
}

uint64_t Histogram::count(const LabelValues& values) const {
  std::lock_guard lock(mu_);
  auto it = series_.find(values);
  return it == series_.end() ? 0 : it->second.count;
}

double Histogram::sum(const LabelValues& values) const {
  std::lock_guard lock(mu_);
  auto it = series_.find(values);
  return it == series_.end() ? 0 : it->second.sum;
}

void Histogram::render(std::string* out) const {
  header(out, *this, "histogram");
  std::lock_guard lock(mu_);
  for (const auto& [values, s] : series_) {
    uint64_t cumulative = 0;
    for (size_t i = 0; i < s.buckets.size(); ++i) {
      cumulative += s.buckets[i];
      std::string le = i < bounds_.size() ? format_value(bounds_[i]) : "+Inf";
      sample(out, "_bucket", values, "le", le, static_cast<double>(cumulative));
    }
    sample(out, "_sum", values, {}, {}, s.sum);
    sample(out, "_count", values, {}, {}, static_cast<double>(s.count));
  }
}

// ---- Registry ---------------------------------------------------------------------------------

template <typename T, typename... Args>
T& Registry::add(std::string name, std::string help, std::vector<std::string> label_names,
                 Args&&... args) {
  if (!is_metric_name(name)) throw std::logic_error("not a metric name: '" + name + "'");
  for (const auto& l : label_names) {
    if (!is_label_name(l)) {
      throw std::logic_error(fmt::format("metric {}: not a label name: '{}'", name, l));
    }
  }
  std::lock_guard lock(mu_);
  for (const auto& f : families_) {
    if (f->name() == name) throw std::logic_error("metric registered twice: " + name);
  }
  auto* family =
      new T(std::move(name), std::move(help), std::move(label_names), std::forward<Args>(args)...);
  families_.emplace_back(family);
  return *family;
}

Counter& Registry::counter(std::string name, std::string help,
                           std::vector<std::string> label_names) {
  return add<Counter>(std::move(name), std::move(help), std::move(label_names));
}

Gauge& Registry::gauge(std::string name, std::string help, std::vector<std::string> label_names) {
  return add<Gauge>(std::move(name), std::move(help), std::move(label_names));
}

Histogram& Registry::histogram(std::string name, std::string help,
                               std::vector<std::string> label_names, std::vector<double> bounds) {
  return add<Histogram>(std::move(name), std::move(help), std::move(label_names),
                        std::move(bounds));
}

void Registry::on_render(std::function<void()> refresh) {
  std::lock_guard lock(mu_);
  refreshers_.push_back(std::move(refresh));
}

std::string Registry::render() const {
  // One render at a time: refreshers clear and refill gauges, which two renders must not
  // interleave.
  std::lock_guard lock(mu_);
  for (const auto& refresh : refreshers_) refresh();
  std::string out;
  for (const auto& f : families_) f->render(&out);
  return out;
}

}  // namespace rtenv::metrics
