/* The retransmission rate limiter: a requester gets at most its burst at once, refills at
 * the configured rate, an empty answer still costs, requesters do not share buckets, and
 * the least recently seen requester is the one replaced when the table is full. */
#include "retransmit.h"
#include "task.h"

#define SEC 1000000000ull

static void test_bucket(void)
{
    static gw_rr_limiter_t lim;
    gw_rr_limiter_init(&lim, 100, 50); /* 100 msgs/s, burst 50 */
    uint64_t t = 10 * SEC;
    ASSERT_UEQ(gw_rr_limiter_allow(&lim, 1, 80, t), 50);
    gw_rr_limiter_charge(&lim, 1, 50);
    ASSERT_UEQ(gw_rr_limiter_allow(&lim, 1, 10, t), 0);  /* empty */
    ASSERT_UEQ(gw_rr_limiter_allow(&lim, 2, 10, t), 10); /* another requester: its own */
    gw_rr_limiter_charge(&lim, 2, 10);
    ASSERT_UEQ(gw_rr_limiter_allow(&lim, 1, 100, t + SEC / 10), 10); /* 0.1 s refills 10 */
    gw_rr_limiter_charge(&lim, 1, 0);                                /* empty answer costs 1 */
    ASSERT_UEQ(gw_rr_limiter_allow(&lim, 1, 100, t + SEC / 10), 9);
    ASSERT_UEQ(gw_rr_limiter_allow(&lim, 1, 1000, t + 100 * SEC), 50); /* capped at the burst */
}

static void test_table_replacement(void)
{
    static gw_rr_limiter_t lim;
    gw_rr_limiter_init(&lim, 1, 5);
    uint64_t t = SEC;
    ASSERT_UEQ(gw_rr_limiter_allow(&lim, 7, 5, t), 5);
    gw_rr_limiter_charge(&lim, 7, 5); /* requester 7 is empty */
    /* GW_RR_REQUESTERS newer requesters push 7 (the least recently seen) out... */
    for (uint32_t a = 100; a < 100 + GW_RR_REQUESTERS; a++)
        ASSERT_UEQ(gw_rr_limiter_allow(&lim, a, 1, t + a), 1);
    /* ...so it comes back with a fresh bucket (the weakness issue 14 addresses). */
    ASSERT_UEQ(gw_rr_limiter_allow(&lim, 7, 5, t + 1000), 5);
}

int main(void)
{
    test_bucket();
    test_table_replacement();
    printf("test_gw_retransmit: ok\n");
    return 0;
}
