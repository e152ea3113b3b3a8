/* The benchmark's latency histogram (bench_common.h): bucket bounds are monotonic and within
 * the stated 1.6 % of the value, quantiles of known distributions come out where they must. */
#include "bench_common.h"
#include "task.h"

static bench_hist_t h;

static void check_buckets(void)
{
    uint64_t prev = 0;
    for (unsigned i = 1; i < BENCH_HIST_BUCKETS; i++) {
        uint64_t v = bench_hist_value(i);
        ASSERT(v > prev); /* strictly increasing lower bounds (unsigned compare) */
        ASSERT_EQ(bench_hist_index(v), i);
        prev = v;
    }
    /* Every value lands in a bucket whose lower bound is at most 1/64 below it. */
    for (uint64_t v = 1; v < (1ull << 40); v = v * 3 + 1) {
        uint64_t lo = bench_hist_value(bench_hist_index(v));
        ASSERT(lo <= v);
        ASSERT((double)(v - lo) <= (double)v / 64.0);
    }
}

static void check_uniform(void)
{
    bench_hist_init(&h);
    for (uint64_t v = 1; v <= 1000000; v++)
        bench_hist_record(&h, v);
    ASSERT_UEQ(h.total, 1000000);
    ASSERT_UEQ(h.min, 1);
    ASSERT_UEQ(h.max, 1000000);
    uint64_t p50 = bench_hist_quantile(&h, 0.5), p99 = bench_hist_quantile(&h, 0.99);
    ASSERT(p50 >= 500000 - 500000 / 64 && p50 <= 500001);
    ASSERT(p99 >= 990000 - 990000 / 64 && p99 <= 990001);
    ASSERT_UEQ(bench_hist_quantile(&h, 1.0), 1000000);
}

static void check_tail(void)
{
    /* 999 fast samples and one slow one: p99.9 and max must see the slow one, p50 must not. */
    bench_hist_init(&h);
    for (int i = 0; i < 999; i++)
        bench_hist_record(&h, 10000);
    bench_hist_record(&h, 5000000);
    ASSERT_UEQ(bench_hist_quantile(&h, 0.5), 10000);
    ASSERT_UEQ(bench_hist_quantile(&h, 0.99), 10000);
    ASSERT(bench_hist_quantile(&h, 0.9999) >= 5000000 - 5000000 / 64);
    ASSERT_UEQ(h.max, 5000000);
    bench_hist_init(&h);
    ASSERT_UEQ(bench_hist_quantile(&h, 0.5), 0); /* empty */
}

static void check_parsers(void)
{
    uint64_t v = 0;
    struct sockaddr_in a;
    ASSERT_EQ(bench_parse_u64("100k", &v), 0);
    ASSERT_UEQ(v, 100000);
    ASSERT_EQ(bench_parse_u64("1.5M", &v), 0);
    ASSERT_UEQ(v, 1500000);
    ASSERT_EQ(bench_parse_u64("-1", &v), -EINVAL);
    ASSERT_EQ(bench_parse_u64("12x", &v), -EINVAL);
    ASSERT_EQ(bench_parse_u64("", &v), -EINVAL);
    ASSERT_EQ(bench_parse_addr("239.1.0.1:5001", &a), 0);
    ASSERT_EQ(ntohs(a.sin_port), 5001);
    ASSERT_EQ(bench_parse_addr("239.1.0.1", &a), -EINVAL);
    ASSERT_EQ(bench_parse_addr("239.1.0.1:0", &a), -EINVAL);
    ASSERT_EQ(bench_parse_addr("239.1.0.1:70000", &a), -EINVAL);
    ASSERT_EQ(bench_parse_addr("not.an.addr:1", &a), -EINVAL);
}

int main(void)
{
    check_buckets();
    check_uniform();
    check_tail();
    check_parsers();
    printf("test_bench_hist: ok\n");
    return 0;
}
