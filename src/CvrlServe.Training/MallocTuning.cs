using System.Runtime.InteropServices;

namespace CvrlServe.Training;

/// <summary>
/// glibc's malloc returns large buffers to the OS after every op (mmap/munmap), which slows TorchSharp
/// inference 2.5–4.5× (engineering notes). Raising the trim and mmap thresholds keeps them.
/// </summary>
internal static partial class MallocTuning
{
    private const int TrimThreshold = -1; // M_TRIM_THRESHOLD
    private const int MmapThreshold = -3; // M_MMAP_THRESHOLD

    public static void Apply()
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }

        try
        {
            _ = Mallopt(TrimThreshold, int.MaxValue);
            _ = Mallopt(MmapThreshold, int.MaxValue);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // Not glibc (e.g. musl): nothing to tune.
        }
    }

    [LibraryImport("libc", EntryPoint = "mallopt")]
    private static partial int Mallopt(int parameter, int value);
}
