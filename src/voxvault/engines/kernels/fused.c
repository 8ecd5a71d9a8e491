/* Fused onnxruntime custom ops for Kokoro's vocoder, domain "ai.voxvault":
 *
 *   Snake(x, alpha, inv_alpha)                     y = x + sin(alpha * x)^2 * inv_alpha
 *   AdaInSnake(x, gain, shift, alpha, inv_alpha)   y = Snake(gain * (x - mean) / sqrt(var + epsilon) + shift)
 *
 * Why: the vocoder applies Snake 48 times per call, each as five element-wise nodes (Mul -> Sin -> Pow ->
 * Mul -> Add), and in front of each an adaptive instance norm exported as nine more (ReduceMean, Sub, Mul,
 * ReduceMean, Add, Sqrt, Div, Mul, Add). onnxruntime's CPU Sin is scalar and every node is a full pass over
 * a tensor of millions of floats, so these chains took about half of a call's time. Here each row (n, c) is
 * done at once while it sits in cache: its mean and variance, then one vectorised pass that writes y.
 *
 * Shapes: x float[N, C, T]; alpha and inv_alpha hold C values (e.g. [1, C, 1]); gain and shift hold N * C
 * values (the style's per-channel scale 1 + gamma and bias beta, [N, C, 1]); mean and var are over T
 * (population variance, as torch's InstanceNorm1d). Rows are spread over onnxruntime's intra-op threads.
 *
 * sin^2 has period pi, so the argument is reduced to r in [-pi/2, pi/2] (Cody-Waite with a two-part pi and
 * fused multiply-adds) and sin(r) is its Taylor series to r^13 (error < 1e-7 there).
 * Built by voxvault/engines/kernels/__init__.py with the system C compiler; the onnxruntime C API header
 * beside it is from Debian's libonnxruntime-dev 1.21 (MIT licence), and API version 21 is requested, which
 * every later onnxruntime provides.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "onnxruntime_c_api.h"

#define VV_API_VERSION 21
#define VV_DOMAIN "ai.voxvault"
/* Below this many elements a tensor is done on the calling thread (waking the pool costs more). */
#define VV_PARALLEL_MIN 65536

static const OrtApi *g_api = NULL;

/* ------------------------------------------------------------------------------------------- maths */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define VV_CLONES __attribute__((target_clones("avx512f", "arch=x86-64-v3", "default")))
#else
#define VV_CLONES
#endif

/* y = Snake((x - center) * scale + shift); centred first, as the exported graph does, so a large mean does
 * not cancel away the precision. With center 0, scale 1 and shift 0 it is plain Snake. */
VV_CLONES
static void snake_row(const float *restrict x, float *restrict y, size_t n, float center, float scale, float shift,
                      float alpha, float inv_alpha) {
    const float inv_pi = 0.318309886183790671538f;
    const float pi_hi = 3.14159274101257324219f;      /* (float)pi */
    const float pi_lo = -8.74227800037248003995e-08f; /* pi - (float)pi */
    for (size_t i = 0; i < n; ++i) {
        float v = __builtin_fmaf(x[i] - center, scale, shift);
        float t = alpha * v;
        float k = __builtin_rintf(t * inv_pi);
        float r = __builtin_fmaf(-k, pi_hi, t);
        r = __builtin_fmaf(-k, pi_lo, r);
        float r2 = r * r;
        float p = 1.60590438368216145994e-10f; /* 1/13! */
        p = __builtin_fmaf(p, r2, -2.50521083854417187751e-08f);
        p = __builtin_fmaf(p, r2, 2.75573192239858906526e-06f);
        p = __builtin_fmaf(p, r2, -1.98412698412698412526e-04f);
        p = __builtin_fmaf(p, r2, 8.33333333333333321769e-03f);
        p = __builtin_fmaf(p, r2, -1.66666666666666657415e-01f);
        float s = __builtin_fmaf(r * r2, p, r);
        y[i] = __builtin_fmaf(s * s, inv_alpha, v);
    }
}

/* Mean and population variance of a row, accumulated in double (rows are up to ~10^5 long) in eight lanes
 * so the compiler can vectorise without reordering any one sum. */
VV_CLONES
static void row_moments(const float *restrict x, size_t n, double *mean, double *var) {
    double sum[8] = {0, 0, 0, 0, 0, 0, 0, 0}, sq[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t body = n - n % 8, i;
    for (i = 0; i < body; i += 8) {
        for (int j = 0; j < 8; ++j) {
            sum[j] += (double)x[i + j];
        }
    }
    double total = 0.0;
    for (int j = 0; j < 8; ++j) {
        total += sum[j];
    }
    for (; i < n; ++i) {
        total += (double)x[i];
    }
    double m = n ? total / (double)n : 0.0;
    for (i = 0; i < body; i += 8) {
        for (int j = 0; j < 8; ++j) {
            double d = (double)x[i + j] - m;
            sq[j] += d * d;
        }
    }
    double squares = 0.0;
    for (int j = 0; j < 8; ++j) {
        squares += sq[j];
    }
    for (; i < n; ++i) {
        double d = (double)x[i] - m;
        squares += d * d;
    }
    *mean = m;
    *var = n ? squares / (double)n : 0.0;
}

/* ---------------------------------------------------------------------------------------- the kernels */
typedef struct {
    const float *x;
    float *y;
    const float *alpha;
    const float *inv_alpha;
    const float *gain;  /* NULL for plain Snake */
    const float *shift;
    float epsilon;
    size_t channels;
    size_t length;
} Job;

static void do_row(void *data, size_t row) {
    const Job *job = (const Job *)data;
    size_t c = row % job->channels;
    size_t at = row * job->length;
    float center = 0.0f, scale = 1.0f, shift = 0.0f;
    if (job->gain != NULL) {
        double mean, var;
        row_moments(job->x + at, job->length, &mean, &var);
        center = (float)mean; /* x - center is exact near the mean; the rounding of center goes to shift */
        double s = (double)job->gain[row] / sqrt(var + (double)job->epsilon);
        scale = (float)s;
        shift = (float)((double)job->shift[row] - (mean - (double)center) * s);
    }
    snake_row(job->x + at, job->y + at, job->length, center, scale, shift, job->alpha[c], job->inv_alpha[c]);
}

static OrtStatusPtr fail(const char *message) { return g_api->CreateStatus(ORT_INVALID_ARGUMENT, message); }

#define TRY(expr)                      \
    do {                               \
        OrtStatusPtr status_ = (expr); \
        if (status_ != NULL) {         \
            return status_;            \
        }                              \
    } while (0)

static OrtStatusPtr shape_of(const OrtValue *value, int64_t *dims, size_t *rank, size_t *count) {
    OrtTensorTypeAndShapeInfo *info = NULL;
    TRY(g_api->GetTensorTypeAndShape(value, &info));
    OrtStatusPtr status = g_api->GetDimensionsCount(info, rank);
    if (status == NULL && *rank <= 8) {
        status = g_api->GetDimensions(info, dims, *rank);
    }
    if (status == NULL) {
        status = g_api->GetTensorShapeElementCount(info, count);
    }
    g_api->ReleaseTensorTypeAndShapeInfo(info);
    if (status == NULL && *rank > 8) {
        return fail("voxvault kernels: input of rank above 8");
    }
    return status;
}

/* Input `index` as floats holding exactly `expected` values. */
static OrtStatusPtr per_row_input(OrtKernelContext *context, size_t index, size_t expected, const float **out,
                                  const char *message) {
    const OrtValue *value = NULL;
    int64_t dims[8];
    size_t rank = 0, count = 0;
    TRY(g_api->KernelContext_GetInput(context, index, &value));
    TRY(shape_of(value, dims, &rank, &count));
    if (count != expected) {
        return fail(message);
    }
    void *p = NULL;
    TRY(g_api->GetTensorMutableData((OrtValue *)value, &p));
    *out = (const float *)p;
    return NULL;
}

typedef struct {
    int adain;
    float epsilon;
} Kernel;

static OrtStatusPtr ORT_API_CALL compute(void *state, OrtKernelContext *context) {
    const Kernel *kernel = (const Kernel *)state;
    const OrtValue *x = NULL;
    int64_t dims[8];
    size_t rank = 0, count = 0;
    TRY(g_api->KernelContext_GetInput(context, 0, &x));
    TRY(shape_of(x, dims, &rank, &count));
    if (rank != 3) {
        return fail("voxvault kernels: x must be [N, C, T]");
    }
    Job job;
    memset(&job, 0, sizeof job);
    job.channels = (size_t)dims[1];
    job.length = (size_t)dims[2];
    size_t rows = (size_t)(dims[0] * dims[1]);
    size_t first_alpha = 1;
    if (kernel->adain) {
        TRY(per_row_input(context, 1, rows, &job.gain, "AdaInSnake: gain must hold one value per (n, c)"));
        TRY(per_row_input(context, 2, rows, &job.shift, "AdaInSnake: shift must hold one value per (n, c)"));
        job.epsilon = kernel->epsilon;
        first_alpha = 3;
    }
    const char *per_channel = "voxvault kernels: alpha and inv_alpha must hold one value per channel";
    TRY(per_row_input(context, first_alpha, job.channels, &job.alpha, per_channel));
    TRY(per_row_input(context, first_alpha + 1, job.channels, &job.inv_alpha, per_channel));
    OrtValue *y = NULL;
    TRY(g_api->KernelContext_GetOutput(context, 0, dims, rank, &y));
    if (count == 0) {
        return NULL;
    }
    void *p = NULL;
    TRY(g_api->GetTensorMutableData((OrtValue *)x, &p));
    job.x = (const float *)p;
    TRY(g_api->GetTensorMutableData(y, &p));
    job.y = (float *)p;
    if (count < VV_PARALLEL_MIN || rows == 1) {
        for (size_t r = 0; r < rows; ++r) {
            do_row(&job, r);
        }
        return NULL;
    }
    return g_api->KernelContext_ParallelFor(context, do_row, rows, 0, &job);
}

/* ------------------------------------------------------------------------------------ the op schemas */
static OrtStatusPtr ORT_API_CALL create_snake(const OrtCustomOp *op, const OrtApi *api, const OrtKernelInfo *info,
                                              void **state) {
    (void)op, (void)api, (void)info;
    Kernel *kernel = (Kernel *)calloc(1, sizeof(Kernel));
    if (kernel == NULL) {
        return g_api->CreateStatus(ORT_FAIL, "out of memory");
    }
    *state = kernel;
    return NULL;
}

static OrtStatusPtr ORT_API_CALL create_adain(const OrtCustomOp *op, const OrtApi *api, const OrtKernelInfo *info,
                                              void **state) {
    (void)op, (void)api;
    float epsilon = 1e-5f;
    OrtStatusPtr status = g_api->KernelInfoGetAttribute_float(info, "epsilon", &epsilon);
    if (status != NULL) {
        g_api->ReleaseStatus(status); /* attribute absent: torch's default */
        epsilon = 1e-5f;
    }
    Kernel *kernel = (Kernel *)calloc(1, sizeof(Kernel));
    if (kernel == NULL) {
        return g_api->CreateStatus(ORT_FAIL, "out of memory");
    }
    kernel->adain = 1;
    kernel->epsilon = epsilon;
    *state = kernel;
    return NULL;
}

static void ORT_API_CALL destroy_kernel(void *state) { free(state); }
static const char *ORT_API_CALL snake_name(const OrtCustomOp *op) { (void)op; return "Snake"; }
static const char *ORT_API_CALL adain_name(const OrtCustomOp *op) { (void)op; return "AdaInSnake"; }
static const char *ORT_API_CALL op_provider(const OrtCustomOp *op) { (void)op; return "CPUExecutionProvider"; }
static ONNXTensorElementDataType ORT_API_CALL float_type(const OrtCustomOp *op, size_t index) {
    (void)op, (void)index;
    return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
}
static size_t ORT_API_CALL three(const OrtCustomOp *op) { (void)op; return 3; }
static size_t ORT_API_CALL five(const OrtCustomOp *op) { (void)op; return 5; }
static size_t ORT_API_CALL one(const OrtCustomOp *op) { (void)op; return 1; }
static OrtCustomOpInputOutputCharacteristic ORT_API_CALL required(const OrtCustomOp *op, size_t index) {
    (void)op, (void)index;
    return INPUT_OUTPUT_REQUIRED;
}
static OrtMemType ORT_API_CALL default_memory(const OrtCustomOp *op, size_t index) {
    (void)op, (void)index;
    return OrtMemTypeDefault;
}
static int ORT_API_CALL arity_one(const OrtCustomOp *op) { (void)op; return 1; }
static int ORT_API_CALL homogeneous(const OrtCustomOp *op) { (void)op; return 1; }
static int ORT_API_CALL start_version(const OrtCustomOp *op) { (void)op; return 1; }
static int ORT_API_CALL end_version(const OrtCustomOp *op) { (void)op; return 2147483647; }
static size_t ORT_API_CALL no_pairs(int **inputs, int **outputs) {
    *inputs = NULL, *outputs = NULL;
    return 0;
}
static void ORT_API_CALL release_pairs(int *inputs, int *outputs) { (void)inputs, (void)outputs; }

static void describe(OrtCustomOp *op, const char *(ORT_API_CALL *name)(const OrtCustomOp *),
                     size_t(ORT_API_CALL *inputs)(const OrtCustomOp *),
                     OrtStatusPtr(ORT_API_CALL *create)(const OrtCustomOp *, const OrtApi *, const OrtKernelInfo *,
                                                        void **)) {
    memset(op, 0, sizeof *op);
    op->version = VV_API_VERSION;
    op->GetName = name;
    op->GetExecutionProviderType = op_provider;
    op->GetInputType = float_type;
    op->GetInputTypeCount = inputs;
    op->GetOutputType = float_type;
    op->GetOutputTypeCount = one;
    op->KernelDestroy = destroy_kernel;
    op->GetInputCharacteristic = required;
    op->GetOutputCharacteristic = required;
    op->GetInputMemoryType = default_memory;
    op->GetVariadicInputMinArity = arity_one;
    op->GetVariadicInputHomogeneity = homogeneous;
    op->GetVariadicOutputMinArity = arity_one;
    op->GetVariadicOutputHomogeneity = homogeneous;
    op->CreateKernelV2 = create;
    op->KernelComputeV2 = compute;
    op->GetStartVersion = start_version;
    op->GetEndVersion = end_version;
    op->GetMayInplace = no_pairs;
    op->ReleaseMayInplace = release_pairs;
    op->GetAliasMap = no_pairs;
    op->ReleaseAliasMap = release_pairs;
}

static OrtCustomOp g_snake, g_adain;
static OrtCustomOpDomain *g_domain = NULL;

OrtStatus *ORT_API_CALL RegisterCustomOps(OrtSessionOptions *options, const OrtApiBase *base) {
    if (g_api == NULL) {
        g_api = base->GetApi(VV_API_VERSION);
        if (g_api == NULL) {
            return NULL; /* too old to even build an error; the session then rejects the unknown ops */
        }
    }
    if (g_domain == NULL) {
        describe(&g_snake, snake_name, three, create_snake);
        describe(&g_adain, adain_name, five, create_adain);
        OrtCustomOpDomain *domain = NULL;
        TRY(g_api->CreateCustomOpDomain(VV_DOMAIN, &domain));
        OrtStatusPtr status = g_api->CustomOpDomain_Add(domain, &g_snake);
        if (status == NULL) {
            status = g_api->CustomOpDomain_Add(domain, &g_adain);
        }
        if (status != NULL) {
            g_api->ReleaseCustomOpDomain(domain);
            return status;
        }
        g_domain = domain; /* lives as long as the process: sessions keep pointing at it */
    }
    return g_api->AddCustomOpDomain(options, g_domain);
}
