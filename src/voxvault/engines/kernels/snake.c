/* voxvault.Snake: y = x + sin(alpha * x)^2 * inv_alpha, one pass, as an onnxruntime custom op.
 *
 * Why: Kokoro's vocoder applies this activation 48 times per call, each as five element-wise nodes
 * (Mul -> Sin -> Pow -> Mul -> Add). onnxruntime's CPU Sin is scalar and every node is a full pass over a
 * tensor of millions of floats, so these chains take about half of a call's time. One fused, vectorised
 * pass does the same arithmetic with one read and one write.
 *
 * Inputs: x float[N, C, T], alpha float[C] (any shape holding C values, e.g. [1, C, 1]), inv_alpha float[C].
 * Output: float[N, C, T]. Rows (n, c) are spread over onnxruntime's intra-op threads.
 *
 * sin^2 has period pi, so the argument is reduced to r in [-pi/2, pi/2] (Cody-Waite with a two-part pi
 * and fused multiply-adds) and sin(r) is its Taylor series to r^13 (error < 1e-7 there).
 * Built by voxvault/engines/kernels/__init__.py with the system C compiler; the onnxruntime C API header
 * beside it is from Debian's libonnxruntime-dev 1.21 (MIT licence), and API version 21 is requested, which
 * every later onnxruntime provides.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "onnxruntime_c_api.h"

#define SNAKE_API_VERSION 21

static const OrtApi *g_api = NULL;

/* ------------------------------------------------------------------------------------------- maths */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define VV_CLONES __attribute__((target_clones("avx512f", "arch=x86-64-v3", "default")))
#else
#define VV_CLONES
#endif

VV_CLONES
static void snake_row(const float *restrict x, float *restrict y, size_t n, float alpha, float inv_alpha) {
    const float inv_pi = 0.318309886183790671538f;
    const float pi_hi = 3.14159274101257324219f;      /* (float)pi */
    const float pi_lo = -8.74227800037248003995e-08f; /* pi - (float)pi */
    for (size_t i = 0; i < n; ++i) {
        float v = x[i];
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

/* ---------------------------------------------------------------------------------------- the kernel */
typedef struct {
    const float *x;
    float *y;
    const float *alpha;
    const float *inv_alpha;
    size_t channels;
    size_t length;
} SnakeJob;

static void snake_rows(void *data, size_t row) {
    const SnakeJob *job = (const SnakeJob *)data;
    size_t c = row % job->channels;
    size_t at = row * job->length;
    snake_row(job->x + at, job->y + at, job->length, job->alpha[c], job->inv_alpha[c]);
}

static OrtStatusPtr fail(const char *message) { return g_api->CreateStatus(ORT_INVALID_ARGUMENT, message); }

#define TRY(expr)                       \
    do {                                \
        OrtStatusPtr status_ = (expr);  \
        if (status_ != NULL) {          \
            return status_;             \
        }                               \
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
        return fail("Snake: input of rank above 8");
    }
    return status;
}

static OrtStatusPtr ORT_API_CALL snake_compute(void *kernel, OrtKernelContext *context) {
    (void)kernel;
    const OrtValue *x = NULL, *alpha = NULL, *inv_alpha = NULL;
    TRY(g_api->KernelContext_GetInput(context, 0, &x));
    TRY(g_api->KernelContext_GetInput(context, 1, &alpha));
    TRY(g_api->KernelContext_GetInput(context, 2, &inv_alpha));
    int64_t dims[8], adims[8];
    size_t rank = 0, count = 0, arank = 0, acount = 0, irank = 0, icount = 0;
    TRY(shape_of(x, dims, &rank, &count));
    TRY(shape_of(alpha, adims, &arank, &acount));
    TRY(shape_of(inv_alpha, adims, &irank, &icount));
    if (rank != 3) {
        return fail("Snake: x must be [N, C, T]");
    }
    if ((int64_t)acount != dims[1] || (int64_t)icount != dims[1]) {
        return fail("Snake: alpha and inv_alpha must hold one value per channel");
    }
    OrtValue *y = NULL;
    TRY(g_api->KernelContext_GetOutput(context, 0, dims, rank, &y));
    if (count == 0) {
        return NULL;
    }
    SnakeJob job;
    void *p = NULL;
    TRY(g_api->GetTensorMutableData((OrtValue *)x, &p));
    job.x = (const float *)p;
    TRY(g_api->GetTensorMutableData(y, &p));
    job.y = (float *)p;
    TRY(g_api->GetTensorMutableData((OrtValue *)alpha, &p));
    job.alpha = (const float *)p;
    TRY(g_api->GetTensorMutableData((OrtValue *)inv_alpha, &p));
    job.inv_alpha = (const float *)p;
    job.channels = (size_t)dims[1];
    job.length = (size_t)dims[2];
    size_t rows = (size_t)(dims[0] * dims[1]);
    if (count < 65536) {
        for (size_t r = 0; r < rows; ++r) {
            snake_rows(&job, r);
        }
        return NULL;
    }
    return g_api->KernelContext_ParallelFor(context, snake_rows, rows, 0, &job);
}

/* ------------------------------------------------------------------------------------ the op schema */
static OrtStatusPtr ORT_API_CALL create_kernel(const OrtCustomOp *op, const OrtApi *api, const OrtKernelInfo *info,
                                               void **kernel) {
    (void)op, (void)api, (void)info;
    *kernel = (void *)&g_api; /* stateless: any non-null pointer */
    return NULL;
}
static void ORT_API_CALL destroy_kernel(void *kernel) { (void)kernel; }
static const char *ORT_API_CALL op_name(const OrtCustomOp *op) { (void)op; return "Snake"; }
static const char *ORT_API_CALL op_provider(const OrtCustomOp *op) { (void)op; return "CPUExecutionProvider"; }
static ONNXTensorElementDataType ORT_API_CALL float_type(const OrtCustomOp *op, size_t index) {
    (void)op, (void)index;
    return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
}
static size_t ORT_API_CALL three(const OrtCustomOp *op) { (void)op; return 3; }
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

static OrtCustomOp g_snake;
static OrtCustomOpDomain *g_domain = NULL;

OrtStatus *ORT_API_CALL RegisterCustomOps(OrtSessionOptions *options, const OrtApiBase *base) {
    if (g_api == NULL) {
        g_api = base->GetApi(SNAKE_API_VERSION);
        if (g_api == NULL) {
            return NULL; /* cannot even build an error status; the session will reject the unknown op */
        }
    }
    if (g_domain == NULL) {
        memset(&g_snake, 0, sizeof g_snake);
        g_snake.version = SNAKE_API_VERSION;
        g_snake.GetName = op_name;
        g_snake.GetExecutionProviderType = op_provider;
        g_snake.GetInputType = float_type;
        g_snake.GetInputTypeCount = three;
        g_snake.GetOutputType = float_type;
        g_snake.GetOutputTypeCount = one;
        g_snake.KernelDestroy = destroy_kernel;
        g_snake.GetInputCharacteristic = required;
        g_snake.GetOutputCharacteristic = required;
        g_snake.GetInputMemoryType = default_memory;
        g_snake.GetVariadicInputMinArity = arity_one;
        g_snake.GetVariadicInputHomogeneity = homogeneous;
        g_snake.GetVariadicOutputMinArity = arity_one;
        g_snake.GetVariadicOutputHomogeneity = homogeneous;
        g_snake.CreateKernelV2 = create_kernel;
        g_snake.KernelComputeV2 = snake_compute;
        g_snake.GetStartVersion = start_version;
        g_snake.GetEndVersion = end_version;
        g_snake.GetMayInplace = no_pairs;
        g_snake.ReleaseMayInplace = release_pairs;
        g_snake.GetAliasMap = no_pairs;
        g_snake.ReleaseAliasMap = release_pairs;
        OrtCustomOpDomain *domain = NULL;
        TRY(g_api->CreateCustomOpDomain("ai.voxvault", &domain));
        OrtStatusPtr status = g_api->CustomOpDomain_Add(domain, &g_snake);
        if (status != NULL) {
            g_api->ReleaseCustomOpDomain(domain);
            return status;
        }
        g_domain = domain; /* lives as long as the process: sessions keep pointing at it */
    }
    return g_api->AddCustomOpDomain(options, g_domain);
}
