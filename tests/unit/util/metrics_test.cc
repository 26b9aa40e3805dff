#include "util/metrics.h"

#include <cmath>
#include <limits>
#include <stdexcept>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace rtenv::metrics {
namespace {

TEST(MetricsTest, CounterWithoutLabels) {
  Registry r;
  Counter& c = r.counter("jobs_total", "Jobs done.");
  EXPECT_EQ(r.render(), "# HELP jobs_total Jobs done.\n# TYPE jobs_total counter\n");
  c.inc();
  c.inc({}, 2);
  c.inc({}, -5);  // a counter never goes down
  EXPECT_EQ(c.value(), 3);
  EXPECT_EQ(r.render(), "# HELP jobs_total Jobs done.\n# TYPE jobs_total counter\njobs_total 3\n");
}

TEST(MetricsTest, SeriesAreOrderedByLabelValues) {
  Registry r;
  Counter& c = r.counter("envs_total", "Envs.", {"kind", "result"});
  c.inc({"python", "ok"});
  c.inc({"package", "ok"}, 4);
  c.inc({"package", "failed"});
  EXPECT_EQ(r.render(),
            "# HELP envs_total Envs.\n"
            "# TYPE envs_total counter\n"
            "envs_total{kind=\"package\",result=\"failed\"} 1\n"
            "envs_total{kind=\"package\",result=\"ok\"} 4\n"
            "envs_total{kind=\"python\",result=\"ok\"} 1\n");
  EXPECT_EQ(c.value({"package", "ok"}), 4);
  EXPECT_EQ(c.value({"conda", "ok"}), 0);
}

TEST(MetricsTest, LabelValuesAndHelpAreEscaped) {
  Registry r;
  Gauge& g = r.gauge("g", "A \\ help\nover two lines \"quoted\".", {"path"});
  g.set({"a\\b \"c\"\nd"}, 1.5);
  EXPECT_EQ(r.render(),
            "# HELP g A \\\\ help\\nover two lines \"quoted\".\n"
            "# TYPE g gauge\n"
            "g{path=\"a\\\\b \\\"c\\\"\\nd\"} 1.5\n");
}

TEST(MetricsTest, GaugesGoBothWaysAndClear) {
  Registry r;
  Gauge& g = r.gauge("bytes", "Bytes.", {"kind"});
  g.set({"package"}, 100);
  g.add({"package"}, -40);
  g.add({"python"}, 7);
  EXPECT_EQ(g.value({"package"}), 60);
  EXPECT_EQ(r.render(),
            "# HELP bytes Bytes.\n# TYPE bytes gauge\n"
            "bytes{kind=\"package\"} 60\nbytes{kind=\"python\"} 7\n");
  g.clear();
  EXPECT_EQ(r.render(), "# HELP bytes Bytes.\n# TYPE bytes gauge\n");
}

TEST(MetricsTest, HistogramBucketsAreCumulativeWithSumAndCount) {
  Registry r;
  Histogram& h = r.histogram("setup_seconds", "Setup.", {"phase"}, {0.1, 1, 10});
  h.observe({"install"}, 0.05);
  h.observe({"install"}, 0.1);  // on a bound: counted in that bucket ("less or equal")
  h.observe({"install"}, 3);
  h.observe({"install"}, 99);
  EXPECT_EQ(h.count({"install"}), 4u);
  EXPECT_DOUBLE_EQ(h.sum({"install"}), 102.15);
  EXPECT_EQ(r.render(),
            "# HELP setup_seconds Setup.\n"
            "# TYPE setup_seconds histogram\n"
            "setup_seconds_bucket{phase=\"install\",le=\"0.1\"} 2\n"
            "setup_seconds_bucket{phase=\"install\",le=\"1\"} 2\n"
            "setup_seconds_bucket{phase=\"install\",le=\"10\"} 3\n"
            "setup_seconds_bucket{phase=\"install\",le=\"+Inf\"} 4\n"
            "setup_seconds_sum{phase=\"install\"} 102.15\n"
            "setup_seconds_count{phase=\"install\"} 4\n");
}

TEST(MetricsTest, HistogramWithoutLabels) {
  Registry r;
  Histogram& h = r.histogram("t", "T.", {}, {1});
  h.observe({}, 0.5);
  EXPECT_EQ(r.render(),
            "# HELP t T.\n# TYPE t histogram\n"
            "t_bucket{le=\"1\"} 1\nt_bucket{le=\"+Inf\"} 1\nt_sum 0.5\nt_count 1\n");
}

TEST(MetricsTest, FamiliesRenderInTheOrderRegistered) {
  Registry r;
  r.gauge("b", "B.").set(1);
  r.counter("a_total", "A.").inc();
  EXPECT_EQ(r.render(),
            "# HELP b B.\n# TYPE b gauge\nb 1\n"
            "# HELP a_total A.\n# TYPE a_total counter\na_total 1\n");
}

TEST(MetricsTest, RefreshersRunBeforeEachRender) {
  Registry r;
  Gauge& g = r.gauge("scrapes", "Renders so far.");
  int n = 0;
  r.on_render([&] { g.set(++n); });
  EXPECT_EQ(r.render(), "# HELP scrapes Renders so far.\n# TYPE scrapes gauge\nscrapes 1\n");
  EXPECT_EQ(r.render(), "# HELP scrapes Renders so far.\n# TYPE scrapes gauge\nscrapes 2\n");
}

TEST(MetricsTest, ValuesAreFormattedAsPrometheusReadsThem) {
  EXPECT_EQ(format_value(0), "0");
  EXPECT_EQ(format_value(42), "42");
  EXPECT_EQ(format_value(-3), "-3");
  EXPECT_EQ(format_value(10737418240.0), "10737418240");
  EXPECT_EQ(format_value(0.005), "0.005");
  EXPECT_EQ(format_value(2.5), "2.5");
  EXPECT_EQ(format_value(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(format_value(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(format_value(std::nan("")), "NaN");
  EXPECT_EQ(std::stod(format_value(1e300)), 1e300);
}

TEST(MetricsTest, MisuseIsABug) {
  Registry r;
  Counter& c = r.counter("c_total", "C.", {"kind"});
  EXPECT_THROW(c.inc(), std::logic_error);
  EXPECT_THROW(c.inc({"a", "b"}), std::logic_error);
  EXPECT_THROW(r.counter("c_total", "again"), std::logic_error);
  EXPECT_THROW(r.counter("bad-name", "x"), std::logic_error);
  EXPECT_THROW(r.counter("0abc", "x"), std::logic_error);
  EXPECT_THROW(r.gauge("g", "x", {"le"}), std::logic_error);
  EXPECT_THROW(r.gauge("g", "x", {"__reserved"}), std::logic_error);
  EXPECT_THROW(r.gauge("g", "x", {"bad label"}), std::logic_error);
  EXPECT_THROW(r.histogram("h", "x", {}, {1, 1}), std::logic_error);
  EXPECT_THROW(r.histogram("h2", "x", {}, {std::numeric_limits<double>::infinity()}),
               std::logic_error);
}

TEST(MetricsTest, ConcurrentUpdatesAreAllCounted) {
  Registry r;
  Counter& c = r.counter("n_total", "N.", {"t"});
  Histogram& h = r.histogram("d", "D.", {}, duration_buckets());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 1000; ++i) {
        c.inc({t % 2 ? "odd" : "even"});
        h.observe({}, 0.001 * i);
        if (i % 100 == 0) (void)r.render();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(c.value({"odd"}) + c.value({"even"}), 4000);
  EXPECT_EQ(h.count(), 4000u);
}

}  // namespace
}  // namespace rtenv::metrics
