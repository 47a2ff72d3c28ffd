/**
 * Log lines by which Python engines (vLLM, SGLang) show they are still getting somewhere while
 * they load: their HTTP server only listens once the model is in memory, so these lines are the
 * only sign of progress, and each one stretches the start deadline.
 */
const PROGRESS =
  /Loading (safetensors|pt|weights)|checkpoint shards|Loading model weights|model weights took|Downloading|Capturing (CUDA graph|batches|cudagraph)|CUDA graph|Memory profiling|KV cache|torch\.compile|Compiling|Load weight|Init torch distributed|warmup/i;

export function isLoadingProgress(line: string): boolean {
  return PROGRESS.test(line);
}
