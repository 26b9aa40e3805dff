#pragma once
// Metrics a long-running process keeps (counters, gauges, histograms, each a family of series by
// label values) and their Prometheus text exposition (format 0.0.4). No domain knowledge: the
// agent names and feeds its own metrics (agent/agent_metrics.h).
//
// Thread-safe: every family guards its series with its own mutex, so recording a value costs one
// uncontended lock and a map lookup; render() takes each family's lock in turn.

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace rtenv::metrics {

/// The values of a family's labels, in the order of its label names.
using LabelValues = std::vector<std::string>;

/// What every family shares: its name, help text and label names. Label values must be as many
/// as the label names (a mismatch is a bug: std::logic_error).
class Family {
 public:
  virtual ~Family() = default;
  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  const std::vector<std::string>& label_names() const { return label_names_; }

 protected:
  Family(std::string name, std::string help, std::vector<std::string> label_names);
  void check_arity(const LabelValues& values) const;
  /// Appends this family's exposition (HELP, TYPE and its samples, series in label order).
  virtual void render(std::string* out) const = 0;
  /// `name{labels[,extra]} value\n` with the labels escaped.
  void sample(std::string* out, std::string_view suffix, const LabelValues& values,
              std::string_view extra_label, std::string_view extra_value, double value) const;
  mutable std::mutex mu_;

 private:
  friend class Registry;
  std::string name_;
  std::string help_;
  std::vector<std::string> label_names_;
};

/// A value that only goes up (events counted since the process started).
class Counter final : public Family {
 public:
  /// Adds `by` (ignored unless positive) to the series of `values`, which starts at 0.
  void inc(const LabelValues& values = {}, double by = 1);
  /// The series' value; 0 for a series never incremented.
  double value(const LabelValues& values = {}) const;

 private:
  friend class Registry;
  using Family::Family;
  void render(std::string* out) const override;
  std::map<LabelValues, double> series_;
};

/// A value that goes up and down (a current amount).
class Gauge final : public Family {
 public:
  void set(const LabelValues& values, double v);
  void set(double v) { set({}, v); }
  void add(const LabelValues& values, double by);
  double value(const LabelValues& values = {}) const;
  /// Drops every series (for gauges recomputed whole before each scrape).
  void clear();

 private:
  friend class Registry;
  using Family::Family;
  void render(std::string* out) const override;
  std::map<LabelValues, double> series_;
};

/// Observations counted into buckets by upper bound, with their sum and count.
class Histogram final : public Family {
 public:
  void observe(const LabelValues& values, double v);
  /// Observations of the series so far.
  uint64_t count(const LabelValues& values = {}) const;
  double sum(const LabelValues& values = {}) const;
  const std::vector<double>& bounds() const { return bounds_; }

 private:
  friend class Registry;
  Histogram(std::string name, std::string help, std::vector<std::string> label_names,
            std::vector<double> bounds);
  void render(std::string* out) const override;
  struct Series {
    std::vector<uint64_t> buckets;  // per bound, not cumulative; the last is +Inf
    double sum = 0;
    uint64_t count = 0;
  };
  std::vector<double> bounds_;  // ascending, finite
  std::map<LabelValues, Series> series_;
};

/// Bucket bounds for durations in seconds, from 5 ms to 30 minutes (installs run from
/// milliseconds, a package already fetched, to many minutes, a large conda env).
std::vector<double> duration_buckets();

/// The families of one process. Families live as long as the registry; the references it hands
/// out stay valid. Thread-safe.
class Registry {
 public:
  /// Registers a family. A name that is not a Prometheus metric name, a label name that is not
  /// one (or is reserved: `le`, `__*`), or a name registered already is a bug: std::logic_error.
  Counter& counter(std::string name, std::string help, std::vector<std::string> label_names = {});
  Gauge& gauge(std::string name, std::string help, std::vector<std::string> label_names = {});
  /// `bounds`: ascending finite upper bounds; +Inf is added.
  Histogram& histogram(std::string name, std::string help, std::vector<std::string> label_names,
                       std::vector<double> bounds);

  /// Runs before each render(), in the order added: for gauges computed when scraped.
  void on_render(std::function<void()> refresh);

  /// The text exposition (Content-Type text/plain; version=0.0.4): every family in the order
  /// registered, `# HELP` and `# TYPE` first, then its series ordered by label values. A family
  /// with no series yet shows only its HELP and TYPE lines.
  std::string render() const;

 private:
  template <typename T, typename... Args>
  T& add(std::string name, std::string help, std::vector<std::string> label_names, Args&&... args);

  mutable std::mutex mu_;  // guards families_ and refreshers_ (not the families' series)
  std::deque<std::unique_ptr<Family>> families_;
  std::vector<std::function<void()>> refreshers_;
};

/// The Content-Type of render()'s text.
inline constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

/// A label value as the exposition writes it between quotes: `\`, `"` and newline escaped.
std::string escape_label_value(std::string_view value);
/// A sample value: an integer without a fraction, `+Inf`, `-Inf`, `NaN`, else the shortest
/// text that reads back as the same double.
std::string format_value(double v);

}  // namespace rtenv::metrics
