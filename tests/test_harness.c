/* The suite's own checks, checked: the closeness rule (th_assert_close*)
 * and the finite-difference rule (th_assert_fd) must fail on what they are
 * meant to catch — a large reference element elsewhere in the tensor (a
 * −1e9 or −1e5 lse) does not loosen the bound of its O(1) neighbours, a
 * NaN/Inf in the reference or the result fails, a gradient check against an
 * all-zero reference or all-zero differences fails, and an FD bound is
 * relative to the largest gradient, not absolute. Each case runs as its own
 * CMocka test in a group that must report exactly that many failures. */
#include "harness.h"
#include <math.h>
#include <stdio.h>

static const float ref4[4] = {-1e9f, 0.5f, 2.0f, -1e5f};

/* ---- must fail ----------------------------------------------------------- */
static void neighbour_of_a_huge_lse_is_not_loosened(void **state) {
    float got[4] = {-1e9f, 0.5f + 1e-3f, 2.0f, -1e5f}; /* 1e-3 off at an O(1) element */
    th_assert_close(got, ref4, 4, 1e-4, "lse with −1e9 and −1e5 rows");
}
static void nan_in_reference_fails(void **state) {
    float ref[3] = {1.0f, NAN, 3.0f}, got[3] = {1.0f, 2.0f, 3.0f};
    th_assert_close(got, ref, 3, 1e-4, "NaN reference");
}
static void inf_in_result_fails(void **state) {
    float ref[3] = {1.0f, 2.0f, 3.0f}, got[3] = {1.0f, INFINITY, 3.0f};
    th_assert_close(got, ref, 3, 1e-4, "Inf result");
}
static void nan_in_both_fails(void **state) {
    float ref[2] = {NAN, 1.0f}, got[2] = {NAN, 1.0f};
    th_assert_close(got, ref, 2, 1e-4, "NaN in both");
}
static void all_zero_reference_gradient_fails(void **state) {
    float ref[3] = {0, 0, 0}, got[3] = {0, 0, 0};
    th_assert_close_grad(got, ref, 3, 1e-3, "all-zero gradient");
}
static void small_gradients_scaled_by_1_1_fail(void **state) {
    float fd[4] = {0.1f, -0.08f, 0.05f, 0.02f}, an[4];
    for (int i = 0; i < 4; i++) an[i] = 1.1f * fd[i]; /* |err| ≤ 0.01: an absolute 1e-2 bound passed it */
    th_assert_fd(an, fd, 4, 1e-2, "gradients of 0.1, 10% off");
}
static void all_zero_differences_fail(void **state) {
    float fd[3] = {0, 0, 0}, an[3] = {0, 0, 0};
    th_assert_fd(an, fd, 3, 1e-2, "all-zero differences");
}
static void small_gradient_off_by_its_own_size_fails(void **state) {
    float ref[4] = {1.0f, 1e-3f, -0.5f, 0.2f}, got[4] = {1.0f, 2e-3f, -0.5f, 0.2f};
    th_assert_close_grad(got, ref, 4, 1e-3, "gradient rule: atol is 1e-3 · rms, not 1e-3");
}

/* ---- must pass ----------------------------------------------------------- */
static void within_the_rule_passes(void **state) {
    float got[4] = {-1e9f + 64.0f, 0.5f + 1e-5f, 2.0f - 2e-4f, -1e5f + 5.0f};
    th_assert_close(got, ref4, 4, 1e-4, "within atol + rtol·|ref| everywhere");
    float fd[3] = {0.1f, -0.05f, 0.0f}, an[3] = {0.1005f, -0.0495f, 0.0009f};
    th_assert_fd(an, fd, 3, 1e-2, "FD within 1e-2 of max|fd|");
    float g[3] = {1.0f, -2.0f, 1e-6f}, gg[3] = {1.0005f, -2.001f, 1e-3f};
    th_assert_close_grad(gg, g, 3, 1e-3, "gradient within rtol and 1e-3 · rms");
}

int main(void) {
    const struct CMUnitTest must_fail[] = {
        cmocka_unit_test(neighbour_of_a_huge_lse_is_not_loosened),
        cmocka_unit_test(nan_in_reference_fails),
        cmocka_unit_test(inf_in_result_fails),
        cmocka_unit_test(nan_in_both_fails),
        cmocka_unit_test(all_zero_reference_gradient_fails),
        cmocka_unit_test(small_gradients_scaled_by_1_1_fail),
        cmocka_unit_test(all_zero_differences_fail),
        cmocka_unit_test(small_gradient_off_by_its_own_size_fails),
    };
    const struct CMUnitTest must_pass[] = {
        cmocka_unit_test(within_the_rule_passes),
    };
    int bad = cmocka_run_group_tests_name("must pass", must_pass, NULL, NULL);
    print_message("(every test of the next group must FAIL: each is a case the rules exist to catch)\n");
    int caught = cmocka_run_group_tests_name("must fail", must_fail, NULL, NULL);
    int want = (int)(sizeof must_fail / sizeof must_fail[0]);
    if (caught != want) {
        fprintf(stderr, "test_harness: %d of the %d cases the rules must catch failed\n", caught, want);
        return 1;
    }
    return bad;
}
