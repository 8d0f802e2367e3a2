// Deterministic signs for a thin SVD: for each column j of U (m x k, C order), find the
// entry of largest magnitude (first one on ties, like numpy.argmax) and, if it is negative,
// negate column j of U and row j of Vt (k x n, C order). One thread block per column; the
// reduction keeps (|value|, index) pairs so that ties resolve to the smallest index.

template <typename T>
__device__ __forceinline__ T abs_val(T x) { return x < T(0) ? -x : x; }

template <typename T>
__global__ void svd_flip_kernel(T* __restrict__ U, T* __restrict__ Vt,
                                long long m, long long n, long long k) {
    extern __shared__ unsigned char smem_raw[];
    T* best_val = reinterpret_cast<T*>(smem_raw);
    long long* best_idx = reinterpret_cast<long long*>(best_val + blockDim.x);

    const long long j = blockIdx.x;
    if (j >= k) return;

    T bv = T(-1);
    long long bi = -1;
    for (long long i = threadIdx.x; i < m; i += blockDim.x) {
        T a = abs_val(U[i * k + j]);
        if (a > bv) { bv = a; bi = i; }
    }
    best_val[threadIdx.x] = bv;
    best_idx[threadIdx.x] = bi;
    __syncthreads();
    for (unsigned int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) {
            T ov = best_val[threadIdx.x + s];
            long long oi = best_idx[threadIdx.x + s];
            T mv = best_val[threadIdx.x];
            long long mi = best_idx[threadIdx.x];
            if (ov > mv || (ov == mv && oi >= 0 && (mi < 0 || oi < mi))) {
                best_val[threadIdx.x] = ov;
                best_idx[threadIdx.x] = oi;
            }
        }
        __syncthreads();
    }
    __shared__ int negate;
    if (threadIdx.x == 0) {
        long long i0 = best_idx[0];
        negate = (i0 >= 0 && U[i0 * k + j] < T(0)) ? 1 : 0;
    }
    __syncthreads();
    if (!negate) return;
    for (long long i = threadIdx.x; i < m; i += blockDim.x) U[i * k + j] = -U[i * k + j];
    for (long long c = threadIdx.x; c < n; c += blockDim.x) Vt[j * n + c] = -Vt[j * n + c];
}
