/*
 * A CA host in C deciding enrollments through libprereg_capi, with the
 * built-in default policy and callbacks over a static table. Run by
 * tests/c_abi.rs (under valgrind where it is installed). Prints one line
 * per decision and exits non-zero if any is not what it expects.
 */
#include <stdio.h>
#include <string.h>

#include "prereg.h"

static const char *const ALLOWED[] = {"example.com"};

static const PreregProcedure PROCEDURES[] = {
    {"routers", "corp", PREREG_PROTOCOL_SCEP, true, ALLOWED, 1},
};

/* Registration 1: router*.dept.example.com with a password; 2: printer1,
 * no password but a serial number. */
static const PreregRegistration REGISTRATIONS[] = {
    {1, "corp", "router*.dept.example.com", NULL, NULL, true, PREREG_STATE_OPEN, 0, 0, 0},
    {2, "corp", "printer1.dept.example.com", NULL, "SN-42", false, PREREG_STATE_OPEN, 0, 0, 0},
};
static const char *const PASSWORDS[] = {"s3cret-enough", NULL};

/* What one decision's callbacks see: the presented password, and the
 * faults this run plays. */
struct context {
    const char *password;
    int storage_fails;   /* the candidates callback fails */
    int lies_about_domain; /* offers registration 1 as belonging to "corp" while the procedure is "lab" */
    int bad_state;         /* offers a registration whose state is no PREREG_STATE_* value */
    int log_lines;
};

static int procedure(void *ctx, const char *name, PreregAnswer *answer) {
    struct context *c = ctx;
    for (size_t i = 0; i < sizeof PROCEDURES / sizeof PROCEDURES[0]; i++) {
        if (strcmp(PROCEDURES[i].name, name) == 0) {
            if (c->lies_about_domain) {
                PreregProcedure lab = PROCEDURES[i];
                lab.domain = "lab";
                return prereg_answer_procedure(answer, &lab);
            }
            return prereg_answer_procedure(answer, &PROCEDURES[i]);
        }
    }
    return 0;
}

/* A real host asks its index; a small table can offer every registration
 * of the domain (the engine checks the patterns). */
static int candidates(void *ctx, const char *domain, const char *fqdn, PreregAnswer *answer) {
    struct context *c = ctx;
    (void)fqdn;
    if (c->storage_fails) {
        return 1;
    }
    if (c->bad_state) {
        PreregRegistration odd = REGISTRATIONS[0];
        odd.state = 7;
        /* Refused (-1), and the decision fails as a host failure. */
        return prereg_answer_candidate(answer, &odd) == 0 ? 0 : 1;
    }
    for (size_t i = 0; i < sizeof REGISTRATIONS / sizeof REGISTRATIONS[0]; i++) {
        if (c->lies_about_domain || strcmp(REGISTRATIONS[i].domain, domain) == 0) {
            if (prereg_answer_candidate(answer, &REGISTRATIONS[i]) != 0) {
                return 1;
            }
        }
    }
    return 0;
}

static int check_password(void *ctx, uint64_t registration, uint32_t *check) {
    struct context *c = ctx;
    if (registration == 0 || registration > sizeof PASSWORDS / sizeof PASSWORDS[0]) {
        return 1;
    }
    const char *expected = PASSWORDS[registration - 1];
    if (expected == NULL) {
        *check = PREREG_PASSWORD_CHECK_NOT_SET;
    } else if (c->password == NULL) {
        *check = PREREG_PASSWORD_CHECK_NOT_PROVIDED;
    } else {
        /* A real host compares slow hashes, in constant time. */
        *check = strcmp(expected, c->password) == 0 ? PREREG_PASSWORD_CHECK_MATCH : PREREG_PASSWORD_CHECK_MISMATCH;
    }
    return 0;
}

static void log_line(void *ctx, int level, const char *message) {
    struct context *c = ctx;
    (void)level;
    (void)message;
    c->log_lines++;
}

static int failures = 0;

static void expect(const PreregPolicy *policy, const char *what, const char *fqdn, const char *serial,
                   struct context *c, bool allowed, const char *reason) {
    PreregHost host = {c, procedure, candidates, check_password, log_line, 1767225600};
    PreregRequest request = {"routers", fqdn, NULL, serial, c->password != NULL};
    PreregError *error = NULL;
    PreregDecision *decision = prereg_decide(policy, &host, &request, &error);
    if (decision == NULL) {
        printf("%s: error: %s\n", what, prereg_error_message(error));
        prereg_error_free(error);
        failures++;
        return;
    }
    bool got_allowed = prereg_decision_allowed(decision);
    const char *got_reason = prereg_decision_reason(decision);
    printf("%s: %s %s (registration %llu%s)\n", what, got_allowed ? "ALLOW" : "DENY", got_reason,
           (unsigned long long)prereg_decision_registration(decision),
           prereg_decision_host_failed(decision) ? ", host failed" : "");
    if (got_allowed != allowed || strcmp(got_reason, reason) != 0) {
        printf("  expected %s %s: %s\n", allowed ? "ALLOW" : "DENY", reason, prereg_decision_explanation(decision));
        failures++;
    }
    prereg_decision_free(decision);
}

int main(void) {
    PreregError *error = NULL;
    PreregEngine *engine = prereg_engine_new(&error);
    if (engine == NULL) {
        printf("engine: %s\n", prereg_error_message(error));
        prereg_error_free(error);
        return 1;
    }
    PreregPolicy *policy = prereg_policy_builtin(engine, &error);
    if (policy == NULL) {
        printf("policy: %s\n", prereg_error_message(error));
        prereg_error_free(error);
        prereg_engine_free(engine);
        return 1;
    }
    printf("prereg %s, policy %s\n", prereg_version(), prereg_policy_name(policy));

    struct context right = {"s3cret-enough", 0, 0, 0, 0};
    struct context wrong = {"guessed", 0, 0, 0, 0};
    struct context none = {NULL, 0, 0, 0, 0};
    struct context failing = {"s3cret-enough", 1, 0, 0, 0};
    struct context lying = {"s3cret-enough", 0, 1, 0, 0};
    struct context odd = {"s3cret-enough", 0, 0, 1, 0};
    expect(policy, "router5 with its password", "router5.dept.example.com", NULL, &right, true, "matched");
    expect(policy, "router5 with a wrong password", "router5.dept.example.com", NULL, &wrong, false, "bad-password");
    expect(policy, "printer1 with its serial", "printer1.dept.example.com", "SN-42", &none, true, "matched");
    expect(policy, "printer1 with another serial", "printer1.dept.example.com", "SN-7", &none, false,
           "serial-mismatch");
    expect(policy, "laptop9, never registered", "laptop9.dept.example.com", NULL, &none, false, "no-registration");
    /* The attacker's side: a failing store never allows, a lying one neither. */
    expect(policy, "router5 while storage fails", "router5.dept.example.com", NULL, &failing, false, "policy-error");
    expect(policy, "router5 offered from another domain", "router5.dept.example.com", NULL, &lying, false,
           "policy-error");
    expect(policy, "router5 offered in no known state", "router5.dept.example.com", NULL, &odd, false,
           "policy-error");

    /* Bytes that are no component are refused with a message, not a crash. */
    static const uint8_t garbage[] = {0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00, 0xff};
    PreregPolicy *bad = prereg_policy_load(engine, garbage, sizeof garbage, &error);
    if (bad != NULL || error == NULL) {
        printf("garbage policy: loaded\n");
        failures++;
        prereg_policy_free(bad);
    } else {
        printf("garbage policy: refused (%.60s...)\n", prereg_error_message(error));
        prereg_error_free(error);
        error = NULL;
    }
    /* NULL arguments are errors, not crashes. */
    PreregDecision *nothing = prereg_decide(policy, NULL, NULL, &error);
    if (nothing != NULL || error == NULL) {
        printf("NULL host: decided\n");
        failures++;
    } else {
        printf("NULL host: refused (%s)\n", prereg_error_message(error));
    }
    prereg_decision_free(nothing);
    prereg_error_free(error);

    prereg_policy_free(policy);
    prereg_engine_free(engine);
    printf("%d unexpected\n", failures);
    return failures == 0 ? 0 : 1;
}
