/* httpparse.c: see httpparse.h. Byte classes are 256-entry tables so that the hot loops are a
 * load and a test per byte (targets and field values: sixteen bytes per test with SSE2); limits
 * are turned into scan bounds, so a limit costs nothing per byte and is checked only where a
 * scan stops. */
#include <string.h>

#include "httpparse.h"

typedef unsigned char uchar;

enum { C_TCHAR = 1, C_TARGET = 2, C_VALUE = 4, C_HOST = 8, C_HEX = 16, C_QDTEXT = 32 };

/* Byte classes, one bit each (generated from the definitions in reactor/_pyparser.py):
 * C_TCHAR tchar (RFC 9110 §5.6.2); C_TARGET 0x21-0x7E and 0x80-0xFF; C_VALUE that plus SP and
 * HTAB; C_HOST the Host characters of reg-name / IP-literal / port; C_HEX HEXDIG; C_QDTEXT
 * C_VALUE without DQUOTE and backslash. */
static const uchar cls[256] = {
     0,  0,  0,  0,  0,  0,  0,  0,  0, 36,  0,  0,  0,  0,  0,  0,
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
    36, 47,  6, 39, 47, 47, 47, 47, 46, 46, 47, 47, 46, 47, 47, 38,
    63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 46, 46, 38, 46, 38, 38,
    38, 63, 63, 63, 63, 63, 63, 47, 47, 47, 47, 47, 47, 47, 47, 47,
    47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 46,  6, 46, 39, 47,
    39, 63, 63, 63, 63, 63, 63, 47, 47, 47, 47, 47, 47, 47, 47, 47,
    47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 38, 39, 38, 47,  0,
    38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38,
    38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38,
    38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38,
    38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38,
    38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38,
    38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38,
    38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38,
    38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38,
};

/* First byte in [p, end) outside class k. Unrolled: one bound check per eight bytes. */
static const uchar *scan(const uchar *p, const uchar *end, uchar k)
{
    while (end - p >= 8) {
        if (!(cls[p[0]] & k)) return p;
        if (!(cls[p[1]] & k)) return p + 1;
        if (!(cls[p[2]] & k)) return p + 2;
        if (!(cls[p[3]] & k)) return p + 3;
        if (!(cls[p[4]] & k)) return p + 4;
        if (!(cls[p[5]] & k)) return p + 5;
        if (!(cls[p[6]] & k)) return p + 6;
        if (!(cls[p[7]] & k)) return p + 7;
        p += 8;
    }
    while (p < end && (cls[*p] & k))
        p++;
    return p;
}

/* scan(p, end, k) for k = C_VALUE or C_TARGET: field values are most of a large head's bytes,
 * so where SSE2 is there (every x86-64) sixteen are tested at once. Outside C_VALUE: the CTLs
 * but HTAB, and DEL; outside C_TARGET: the CTLs, SP and DEL. */
#ifdef __SSE2__
#include <emmintrin.h>

static const uchar *scan_wide(const uchar *p, const uchar *end, uchar k)
{
    const __m128i low = _mm_set1_epi8(k == C_VALUE ? 0x1F : 0x20), del = _mm_set1_epi8(0x7F);
    const __m128i tab = _mm_set1_epi8(k == C_VALUE ? '\t' : 0x7F);
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)p);
        __m128i ctl = _mm_cmpeq_epi8(_mm_min_epu8(v, low), v); /* v <= low, unsigned */
        __m128i out = _mm_or_si128(_mm_andnot_si128(_mm_cmpeq_epi8(v, tab), ctl),
                                   _mm_cmpeq_epi8(v, del));
        int stop = _mm_movemask_epi8(out);
        if (stop)
            return p + __builtin_ctz((unsigned)stop);
        p += 16;
    }
    return scan(p, end, k);
}
#else
#define scan_wide scan
#endif

/* Case-insensitive compare against a lower-case literal. `| 0x20` folds only letters here:
 * the other bytes it could confuse (CTLs) never pass the byte-class checks before it. */
static int eq_lower(const uchar *p, size_t n, const char *lit, size_t lit_len)
{
    size_t i;
    if (n != lit_len)
        return 0;
    for (i = 0; i < n; i++)
        if ((p[i] | 0x20) != (uchar)lit[i])
            return 0;
    return 1;
}

#define LIT(s) s, sizeof(s) - 1

/* What the framing fields said, gathered while the head is scanned, judged once it is whole. */
struct framing {
    int hosts, host_bad;
    int cl_present, cl_bad;
    int64_t cl;
    int te_present, te_bad, te_chunked, te_last_chunked, te_other;
    int expect_continue, expect_bad;
    int close, keep_alive;
    int precondition;
    int accept_encodings;
    const uchar *accept_encoding;
    size_t accept_encoding_len;
    const uchar *referer, *user_agent;
    size_t referer_len, user_agent_len;
};

static void trim(const uchar **s, const uchar **e)
{
    while (*s < *e && (**s == ' ' || **s == '\t'))
        (*s)++;
    while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t'))
        (*e)--;
}

/* Calls one of the element handlers below for each comma-separated, OWS-trimmed element. */
#define FOR_EACH_ELEMENT(v, vlen, s, n, body)                                     \
    do {                                                                          \
        const uchar *p_ = (v), *e_ = (v) + (vlen);                                \
        for (;;) {                                                                \
            const uchar *s_ = p_, *t_;                                            \
            while (p_ < e_ && *p_ != ',')                                         \
                p_++;                                                             \
            t_ = p_;                                                              \
            trim(&s_, &t_);                                                       \
            {                                                                     \
                const uchar *s = s_;                                              \
                size_t n = (size_t)(t_ - s_);                                     \
                body                                                              \
            }                                                                     \
            if (p_ == e_)                                                         \
                break;                                                            \
            p_++;                                                                 \
        }                                                                         \
    } while (0)

static void content_length(struct framing *f, const uchar *v, size_t vlen)
{
    f->cl_present = 1;
    FOR_EACH_ELEMENT(v, vlen, s, n, {
        int64_t x = 0;
        size_t i;
        if (n == 0 || n > 18) { /* 18 digits always fit in an int64 */
            f->cl_bad = 1;
        } else {
            for (i = 0; i < n; i++) {
                if (s[i] < '0' || s[i] > '9') {
                    f->cl_bad = 1;
                    break;
                }
                x = x * 10 + (s[i] - '0');
            }
            if (f->cl >= 0 && x != f->cl)
                f->cl_bad = 1;
            f->cl = x;
        }
    });
}

static void transfer_encoding(struct framing *f, const uchar *v, size_t vlen)
{
    f->te_present = 1;
    FOR_EACH_ELEMENT(v, vlen, s, n, {
        if (n == 0 || scan(s, s + n, C_TCHAR) != s + n)
            f->te_bad = 1;
        if (eq_lower(s, n, LIT("chunked"))) {
            f->te_chunked++;
            f->te_last_chunked = 1;
        } else {
            f->te_last_chunked = 0;
            f->te_other = 1;
        }
    });
}

static void connection(struct framing *f, const uchar *v, size_t vlen)
{
    FOR_EACH_ELEMENT(v, vlen, s, n, {
        if (eq_lower(s, n, LIT("close")))
            f->close = 1;
        else if (eq_lower(s, n, LIT("keep-alive")))
            f->keep_alive = 1;
    });
}

int hp_precondition_field(const char *name, size_t name_len)
{
    const uchar *n = (const uchar *)name;
    switch (name_len) {
    case 5:
        return eq_lower(n, name_len, LIT("range"));
    case 8:
        return eq_lower(n, name_len, LIT("if-range")) || eq_lower(n, name_len, LIT("if-match"));
    case 13:
        return eq_lower(n, name_len, LIT("if-none-match"));
    case 17:
        return eq_lower(n, name_len, LIT("if-modified-since"));
    case 19:
        return eq_lower(n, name_len, LIT("if-unmodified-since"));
    }
    return 0;
}

static void framing_field(struct framing *f, const uchar *name, size_t name_len,
                          const uchar *v, size_t vlen)
{
    if (hp_precondition_field((const char *)name, name_len)) {
        f->precondition = 1;
        return;
    }
    switch (name_len) {
    case 15:
        if (eq_lower(name, name_len, LIT("accept-encoding")) && !f->accept_encodings++) {
            f->accept_encoding = v;
            f->accept_encoding_len = vlen;
        }
        break;
    case 7:
        if (!f->referer && eq_lower(name, name_len, LIT("referer"))) {
            f->referer = v;
            f->referer_len = vlen;
        }
        break;
    case 4:
        if (eq_lower(name, name_len, LIT("host"))) {
            if (++f->hosts == 1 && scan(v, v + vlen, C_HOST) != v + vlen)
                f->host_bad = 1;
        }
        break;
    case 6:
        if (eq_lower(name, name_len, LIT("expect"))) {
            if (eq_lower(v, vlen, LIT("100-continue")))
                f->expect_continue = 1;
            else
                f->expect_bad = 1;
        }
        break;
    case 10:
        if (eq_lower(name, name_len, LIT("connection")))
            connection(f, v, vlen);
        else if (!f->user_agent && eq_lower(name, name_len, LIT("user-agent"))) {
            f->user_agent = v;
            f->user_agent_len = vlen;
        }
        break;
    case 14:
        if (eq_lower(name, name_len, LIT("content-length")))
            content_length(f, v, vlen);
        break;
    case 17:
        if (eq_lower(name, name_len, LIT("transfer-encoding")))
            transfer_encoding(f, v, vlen);
        break;
    }
}

/* The semantic checks on a complete head, in the documented order: Host, Transfer-Encoding,
 * Content-Length, Expect. Returns 0 or the negated status. */
static long judge(const struct framing *f, int http11, struct hp_request *req)
{
    int flags = http11 ? HP_HTTP11 : 0;
    if ((http11 && f->hosts == 0) || f->hosts > 1 || f->host_bad)
        return -400;
    req->content_length = -1;
    if (f->te_present) {
        if (!http11 || f->cl_present || f->te_bad || f->te_chunked > 1
            || (f->te_chunked && !f->te_last_chunked))
            return -400;
        if (!f->te_chunked || f->te_other)
            return -501;
        flags |= HP_CHUNKED;
    } else if (f->cl_present) {
        if (f->cl_bad)
            return -400;
        req->content_length = f->cl;
    }
    if (f->expect_bad)
        return -417;
    if (f->expect_continue && http11)
        flags |= HP_EXPECT_CONTINUE;
    if (!f->close && (http11 || f->keep_alive))
        flags |= HP_KEEP_ALIVE;
    if (f->precondition)
        flags |= HP_PRECONDITION;
    req->flags = flags;
    req->accept_encoding = (const char *)f->accept_encoding;
    req->accept_encoding_len = f->accept_encoding_len;
    req->accept_encodings = f->accept_encodings;
    req->referer = (const char *)f->referer;
    req->referer_len = f->referer_len;
    req->user_agent = (const char *)f->user_agent;
    req->user_agent_len = f->user_agent_len;
    return 0;
}

/* Where a bounded request-line scan stopped at its bound q: incomplete, 414 (a byte other than
 * CR at the line limit), 431 (a byte at the head limit), or 0 when q is a CR exactly at the
 * line limit and the syntax check decides. */
static long line_bound(const uchar *q, const uchar *end, const uchar *line_limit,
                       const uchar *head_stop)
{
    if (q == end)
        return HP_INCOMPLETE;
    if (q == line_limit && *q != '\r')
        return -414;
    if (q == head_stop)
        return -431;
    return 0;
}

#define HEAD_BOUND(q) return (q) == end ? HP_INCOMPLETE : -431

long hp_parse_request(const char *buf, size_t len, const struct hp_limits *limits,
                      struct hp_request *req, struct hp_field *fields, size_t fields_cap)
{
    const uchar *start = (const uchar *)buf, *end = start + len;
    const uchar *hstop = start + (len < limits->max_head ? len : limits->max_head);
    const uchar *p = start, *q, *line_limit, *rstop;
    size_t max_fields = fields_cap < limits->max_headers ? fields_cap : limits->max_headers;
    size_t nf = 0;
    struct framing f;
    long r;
    int i;

    for (;;) { /* empty lines before the request line (RFC 9112 §2.2) */
        if (p == hstop)
            HEAD_BOUND(p);
        if (*p != '\r')
            break;
        if (p + 1 == hstop)
            HEAD_BOUND(p + 1);
        if (p[1] != '\n')
            return -400;
        p += 2;
    }

    /* request line, scanned within rstop = min(end, head limit, line limit) */
    line_limit = (size_t)(hstop - p) >= limits->max_request_line ? p + limits->max_request_line
                                                                 : NULL;
    rstop = line_limit ? line_limit : hstop;

    q = scan(p, rstop, C_TCHAR);
    if (q == rstop && (r = line_bound(q, end, line_limit, hstop)))
        return r;
    if (q == p || *q != ' ')
        return -400;
    req->method = (const char *)p;
    req->method_len = (size_t)(q - p);

    p = q + 1;
    q = scan_wide(p, rstop, C_TARGET);
    if (q == rstop && (r = line_bound(q, end, line_limit, hstop)))
        return r;
    if (q == p || *q != ' ')
        return -400;
    req->target = (const char *)p;
    req->target_len = (size_t)(q - p);

    p = q + 1;
    for (i = 0; i < 9; i++) { /* "HTTP/" DIGIT "." DIGIT CR */
        uchar c;
        if (p + i == rstop && (r = line_bound(p + i, end, line_limit, hstop)))
            return r;
        c = p[i];
        if (i < 5 ? c != "HTTP/"[i]
                  : i == 6 ? c != '.' : i == 8 ? c != '\r' : (c < '0' || c > '9'))
            return -400;
    }
    if (p + 9 == hstop)
        HEAD_BOUND(p + 9);
    if (p[9] != '\n')
        return -400;
    if (p[5] != '1')
        return -505;
    i = p[7] != '0';
    p += 10;

    memset(&f, 0, sizeof f);
    f.cl = -1;
    for (;;) { /* field lines */
        const uchar *name = p, *colon, *vs, *ve;
        if (p == hstop)
            HEAD_BOUND(p);
        if (*p == '\r') {
            if (p + 1 == hstop)
                HEAD_BOUND(p + 1);
            if (p[1] != '\n')
                return -400;
            p += 2;
            break;
        }
        colon = scan(p, hstop, C_TCHAR);
        if (colon == hstop)
            HEAD_BOUND(colon);
        if (colon == name || *colon != ':')
            return -400;
        vs = colon + 1;
        q = scan_wide(vs, hstop, C_VALUE);
        if (q == hstop)
            HEAD_BOUND(q);
        if (*q != '\r')
            return -400;
        if (q + 1 == hstop)
            HEAD_BOUND(q + 1);
        if (q[1] != '\n')
            return -400;
        if (nf == max_fields)
            return -431;
        ve = q;
        trim(&vs, &ve);
        fields[nf].name = (const char *)name;
        fields[nf].name_len = (size_t)(colon - name);
        fields[nf].value = (const char *)vs;
        fields[nf].value_len = (size_t)(ve - vs);
        framing_field(&f, name, (size_t)(colon - name), vs, (size_t)(ve - vs));
        nf++;
        p = q + 2;
    }
    req->num_fields = nf;
    if ((r = judge(&f, i, req)))
        return r;
    return (long)(p - start);
}

static char *put(char *o, const char *s, size_t n)
{
    memcpy(o, s, n);
    o[n] = '\0';
    return o + n + 1;
}

const char hp_methods[] = "GET HEAD POST PUT DELETE OPTIONS PATCH TRACE CONNECT ";

_Static_assert(HP_METHOD_UNIT > (HP_CHUNKED | HP_KEEP_ALIVE | HP_EXPECT_CONTINUE | HP_HTTP11
                                 | HP_PRECONDITION), "the method number shares a slot with flags");

/* The method's number in hp_methods, 0 when it is not there. */
static int method_number(const char *method, size_t len)
{
    const char *name = hp_methods, *space;
    int number;
    for (number = 1; *name; number++, name = space + 1) {
        space = strchr(name, ' ');
        if ((size_t)(space - name) == len && !memcmp(name, method, len))
            return number;
    }
    return 0;
}

long hp_parse_batch(const struct hp_batch *b, const char *buf, size_t len, size_t start)
{
    int64_t *meta = b->meta, *m = b->meta + 3;
    int64_t status = 0;
    size_t max_requests = (b->meta_cap - 3) / 3, n = 0, pos = start;
    char *out = b->out, *o = out;
    struct hp_request req;

    while (pos < len) {
        long r;
        size_t i, k;
        int method;
        if (n == max_requests) {
            status = -1;
            break;
        }
        r = hp_parse_request(buf + pos, len - pos, &b->limits, &req, b->fields, b->fields_cap);
        if (r == HP_INCOMPLETE)
            break;
        if (r < 0) {
            status = -r;
            break;
        }
        /* what is written is never longer than the head it comes from */
        if ((size_t)(out + b->out_cap - o) < (size_t)r) {
            status = -1;
            break;
        }
        method = method_number(req.method, req.method_len);
        if (method)
            *o++ = '\0';
        else
            o = put(o, req.method, req.method_len);
        o = put(o, req.target, req.target_len);
        for (i = 0; i < req.num_fields; i++) {
            const struct hp_field *fl = &b->fields[i];
            const uchar *s = (const uchar *)fl->name;
            for (k = 0; k < fl->name_len; k++)
                o[k] = (char)(s[k] + ((uchar)(s[k] - 'A') < 26 ? 32 : 0));
            o[k] = '\0';
            o += k + 1;
            o = put(o, fl->value, fl->value_len);
        }
        m[0] = (int64_t)req.num_fields;
        m[1] = req.flags + HP_METHOD_UNIT * method;
        m[2] = req.content_length;
        m += 3;
        n++;
        pos += (size_t)r;
        if ((req.flags & HP_CHUNKED) || req.content_length > 0)
            break;
    }
    meta[0] = status;
    meta[1] = (int64_t)pos;
    meta[2] = (int64_t)(o - out);
    return (long)n;
}

/* A field value for the log, or HP_ABSENT when the request has no such field. */
static char *put_logged(char *o, const char *value, size_t n)
{
    if (!value)
        return put(o, HP_ABSENT, 1);
    return put(o, value, n);
}

long hp_scan_plain(const struct hp_batch *b, const char *buf, size_t len, size_t start,
                   int logged)
{
    int64_t *meta = b->meta;
    size_t max_requests = b->meta_cap - 3, n = 0, pos = start;
    char *out = b->out, *o = out;
    struct hp_request req;

    while (pos < len && n < max_requests) {
        long r = hp_parse_request(buf + pos, len - pos, &b->limits, &req, b->fields,
                                  b->fields_cap);
        int head;
        size_t need;
        if (r < 0)
            break;
        head = req.method_len == 4 && !memcmp(req.method, "HEAD", 4);
        if (!head && !(req.method_len == 3 && !memcmp(req.method, "GET", 3)))
            break;
        if ((req.flags & (HP_CHUNKED | HP_PRECONDITION)) || req.content_length > 0
            || req.accept_encodings > 1)
            break;
        need = req.target_len + req.accept_encoding_len + 2;
        if (logged)
            need += req.referer_len + req.user_agent_len + 4;
        if ((size_t)(out + b->out_cap - o) < need)
            break;
        meta[3 + n] = (int64_t)pos;
        memcpy(o, req.target, req.target_len);
        o += req.target_len;
        *o++ = (char)(1 + (head ? HP_PLAIN_HEAD : 0) + (req.flags & HP_HTTP11 ? HP_PLAIN_HTTP11 : 0)
                      + (req.flags & HP_KEEP_ALIVE ? HP_PLAIN_KEEP_ALIVE : 0)
                      + (req.accept_encodings ? HP_PLAIN_ACCEPT_ENCODING : 0));
        if (req.accept_encodings) {
            memcpy(o, req.accept_encoding, req.accept_encoding_len);
            o += req.accept_encoding_len;
        }
        *o++ = '\0';
        if (logged) {
            o = put_logged(o, req.referer, req.referer_len);
            o = put_logged(o, req.user_agent, req.user_agent_len);
        }
        n++;
        pos += (size_t)r;
        if (!(req.flags & HP_KEEP_ALIVE))
            break;
    }
    meta[0] = 0;
    meta[1] = (int64_t)pos;
    meta[2] = (int64_t)(o - out);
    return (long)n;
}

enum {
    SIZE0, SIZE, EXT_NAME0, EXT_NAME, EXT_VALUE0, EXT_TOKEN, EXT_QUOTED, EXT_PAIR, EXT_QEND,
    EXT_WS, EXT_NAME_WS, /* BWS (RFC 9112 7.1.1): after a size or value / after a name */
    SIZE_LF, DATA, DATA_CR, DATA_LF, TR_LINE0, TR_NAME, TR_VALUE, TR_LF, TR_END_LF, DONE
};

static int hexval(uchar c)
{
    return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

/* One framing byte: the next state, or -1 for a 400. Mirrors ChunkedDecoder._step. */
static int chunk_step(struct hp_chunked *d, int s, uchar c)
{
    if (s <= EXT_NAME_WS) {
        int ends_ext = s == SIZE || s == EXT_NAME || s == EXT_TOKEN || s == EXT_QEND;
        if (s == SIZE0) {
            d->size = 0;
            d->digits = 0;
            d->line = 0;
        }
        if (++d->line > HP_MAX_CHUNK_LINE && c != '\r')
            return -1;
        if ((s == SIZE0 || s == SIZE) && (cls[c] & C_HEX)) {
            if (d->digits == 16 || d->size > (uint64_t)INT64_MAX >> 4)
                return -1;
            d->digits++;
            d->size = d->size * 16 + (uint64_t)hexval(c);
            return SIZE;
        }
        if (s == SIZE0)
            return -1;
        if (c == '\r' && ends_ext)
            return SIZE_LF;
        if (c == ';' && (ends_ext || s == EXT_WS || s == EXT_NAME_WS))
            return EXT_NAME0;
        if (c == ' ' || c == '\t') {
            if (s == SIZE || s == EXT_TOKEN || s == EXT_QEND || s == EXT_WS)
                return EXT_WS;
            if (s == EXT_NAME || s == EXT_NAME_WS)
                return EXT_NAME_WS;
            if (s == EXT_NAME0 || s == EXT_VALUE0)
                return s;
        }
        if ((s == EXT_NAME0 || s == EXT_NAME) && (cls[c] & C_TCHAR))
            return EXT_NAME;
        if ((s == EXT_NAME || s == EXT_NAME_WS) && c == '=')
            return EXT_VALUE0;
        if ((s == EXT_VALUE0 || s == EXT_TOKEN) && (cls[c] & C_TCHAR))
            return EXT_TOKEN;
        if (s == EXT_VALUE0 && c == '"')
            return EXT_QUOTED;
        if (s == EXT_QUOTED)
            return c == '"' ? EXT_QEND : c == '\\' ? EXT_PAIR : (cls[c] & C_QDTEXT) ? EXT_QUOTED : -1;
        if (s == EXT_PAIR && (cls[c] & C_VALUE))
            return EXT_QUOTED;
        return -1;
    }
    switch (s) {
    case SIZE_LF:
        if (c != '\n')
            return -1;
        d->trailer = 0;
        return d->size ? DATA : TR_LINE0;
    case DATA_CR:
        return c == '\r' ? DATA_LF : -1;
    case DATA_LF:
        return c == '\n' ? SIZE0 : -1;
    }
    if (++d->trailer > d->max_trailers)
        return -1;
    switch (s) {
    case TR_LINE0:
        return c == '\r' ? TR_END_LF : (cls[c] & C_TCHAR) ? TR_NAME : -1;
    case TR_NAME:
        return (cls[c] & C_TCHAR) ? TR_NAME : c == ':' ? TR_VALUE : -1;
    case TR_VALUE:
        return c == '\r' ? TR_LF : (cls[c] & C_VALUE) ? TR_VALUE : -1;
    case TR_LF:
        return c == '\n' ? TR_LINE0 : -1;
    default: /* TR_END_LF */
        return c == '\n' ? DONE : -1;
    }
}

long hp_decode_chunked(struct hp_chunked *d, const char *buf, size_t len, char *out,
                       size_t *out_len)
{
    const uchar *p = (const uchar *)buf, *end = p + len;
    size_t o = 0;
    int s = d->state;

    if (s < 0) /* an earlier error: the body is beyond repair */
        return -400;
    while (p < end && s != DONE) {
        if (s == DATA) {
            size_t k = (size_t)(end - p);
            if (k > d->size)
                k = (size_t)d->size;
            memcpy(out + o, p, k);
            o += k;
            p += k;
            d->size -= k;
            if (!d->size)
                s = DATA_CR;
            continue;
        }
        s = chunk_step(d, s, *p++);
        if (s < 0) {
            d->state = s;
            *out_len = 0;
            return -400;
        }
    }
    d->state = s;
    *out_len = o;
    return (long)(p - (const uchar *)buf);
}

int hp_chunked_done(const struct hp_chunked *d)
{
    return d->state == DONE;
}
