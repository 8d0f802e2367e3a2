// Fast Walsh-Hadamard transform kernels for sparselin.transforms.fwht (natural order,
// in place, unnormalised butterflies u + v, u - v; the caller reorders the input for the
// sequency and dyadic orders).
//
// Data: `rows` C-contiguous rows of K = 2^k points each. Value types: float, double and the
// complex types cf / cd below, laid out as CuPy's complex64 / complex128 (real, imaginary).
//
//   fwht_tile<V>          one thread block per tile of 2^log_tile contiguous points (a whole
//                         row when it fits in shared memory): every stage inside the tile, in
//                         shared memory, with the scale applied on load.
//   fwht_strided<V, RAD>  log2(RAD) further stages with strides h, 2h, ..: one thread per
//                         butterfly group, the RAD points held in registers; consecutive
//                         threads take consecutive points, so every load and store coalesces.
//   hadamard_factor<V>    for lengths m * K: y[i*K + j] = s * sum_l A[i, l] x[l*K + j], one
//                         thread per (row, j), A the m x m +-1 matrix (int8, row-major).
//
// The stages of a Walsh-Hadamard transform commute, so the tile stages may run before the
// strided ones whatever their strides.

struct __align__(8) cf {
    float x, y;
};
struct __align__(16) cd {
    double x, y;
};

__device__ __forceinline__ cf operator+(cf a, cf b) { return cf{a.x + b.x, a.y + b.y}; }
__device__ __forceinline__ cf operator-(cf a, cf b) { return cf{a.x - b.x, a.y - b.y}; }
__device__ __forceinline__ cd operator+(cd a, cd b) { return cd{a.x + b.x, a.y + b.y}; }
__device__ __forceinline__ cd operator-(cd a, cd b) { return cd{a.x - b.x, a.y - b.y}; }

__device__ __forceinline__ float scaled(float a, double s) { return a * static_cast<float>(s); }
__device__ __forceinline__ double scaled(double a, double s) { return a * s; }
__device__ __forceinline__ cf scaled(cf a, double s) {
    const float t = static_cast<float>(s);
    return cf{a.x * t, a.y * t};
}
__device__ __forceinline__ cd scaled(cd a, double s) { return cd{a.x * s, a.y * s}; }

template <typename V>
__device__ __forceinline__ V zero_value() { return V(); }

template <typename V>
__global__ void fwht_tile(V* __restrict__ data, int log_tile, double scale) {
    // 16-byte alignment for the widest value type (complex128).
    extern __shared__ __align__(16) unsigned char fwht_smem[];
    V* s = reinterpret_cast<V*>(fwht_smem);
    const int tile = 1 << log_tile;
    const int half = tile >> 1;
    V* x = data + static_cast<long long>(blockIdx.x) * tile;
    for (int i = threadIdx.x; i < tile; i += blockDim.x) s[i] = scaled(x[i], scale);
    __syncthreads();
    for (int lh = 0; lh < log_tile; ++lh) {
        const int h = 1 << lh;
        for (int b = threadIdx.x; b < half; b += blockDim.x) {
            // Butterfly b pairs positions i and i + h, with i = b with a 0 inserted at bit lh.
            const int i = ((b >> lh) << (lh + 1)) | (b & (h - 1));
            const V u = s[i];
            const V v = s[i + h];
            s[i] = u + v;
            s[i + h] = u - v;
        }
        __syncthreads();
    }
    for (int i = threadIdx.x; i < tile; i += blockDim.x) x[i] = s[i];
}

template <typename V, int RAD>
__global__ void fwht_strided(V* __restrict__ data, long long units, long long K, long long h) {
    const long long u = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (u >= units) return;
    // Unit u: row r, group g (RAD * h points), offset j < h inside the group.
    const long long per_row = K / RAD;
    const long long r = u / per_row;
    const long long rem = u - r * per_row;
    const long long g = rem / h;
    const long long j = rem - g * h;
    V* x = data + r * K + g * RAD * h + j;
    V v[RAD];
#pragma unroll
    for (int t = 0; t < RAD; ++t) v[t] = x[t * h];
#pragma unroll
    for (int step = 1; step < RAD; step <<= 1) {
#pragma unroll
        for (int t = 0; t < RAD; ++t) {
            if ((t & step) == 0) {
                const V a = v[t];
                const V b = v[t + step];
                v[t] = a + b;
                v[t + step] = a - b;
            }
        }
    }
#pragma unroll
    for (int t = 0; t < RAD; ++t) x[t * h] = v[t];
}

template <typename V>
__global__ void hadamard_factor(V* __restrict__ data, long long rows, long long K, int m,
                                const signed char* __restrict__ A, double scale) {
    const long long u = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (u >= rows * K) return;
    const long long r = u / K;
    const long long j = u - r * K;
    V* x = data + r * m * K + j;
    V v[28];  // m <= 28
    for (int l = 0; l < m; ++l) v[l] = scaled(x[l * K], scale);
    for (int i = 0; i < m; ++i) {
        V acc = zero_value<V>();
        for (int l = 0; l < m; ++l) {
            acc = A[i * m + l] > 0 ? acc + v[l] : acc - v[l];
        }
        x[i * K] = acc;
    }
}
