namespace CvrlServe.Core.Storage;

/// <summary>
/// Whether <see cref="FileLock"/> can exclude other machines on the volume holding a folder, from the mount
/// table (<c>/proc/self/mounts</c>): an NFS mount with <c>nolock</c>, or with <c>local_lock=flock</c> or
/// <c>all</c>, takes flock locks on the client only, so replicas on other nodes do not see them, and
/// <c>DOTNET_SYSTEM_IO_DISABLEFILELOCKING</c> turns .NET's file locks off. Only a warning: a single replica,
/// or several on one node, are still safe.
/// </summary>
public static class VolumeLocking
{
    /// <summary>Why locks in <paramref name="folder"/> may not reach other machines, or null when nothing says so.</summary>
    public static string? Warning(string folder)
    {
        if (Environment.GetEnvironmentVariable("DOTNET_SYSTEM_IO_DISABLEFILELOCKING") is "1" or "true")
        {
            return "DOTNET_SYSTEM_IO_DISABLEFILELOCKING is set: file locks are off, so replicas sharing this folder are not serialized.";
        }

        try
        {
            return File.Exists("/proc/self/mounts") ? Warning(folder, File.ReadAllText("/proc/self/mounts")) : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>As <see cref="Warning(string)"/>, from the text of a mount table.</summary>
    public static string? Warning(string folder, string mounts)
    {
        ArgumentNullException.ThrowIfNull(mounts);
        string path = Path.GetFullPath(folder).TrimEnd('/') + "/";
        (string Point, string Type, string[] Options)? best = null;
        foreach (string line in mounts.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            string[] fields = line.Split(' ');
            if (fields.Length < 4)
            {
                continue;
            }

            string point = Unescape(fields[1]);
            string prefix = point.TrimEnd('/') + "/";
            // The last mount of the longest matching point is the one in effect (later mounts cover earlier ones).
            if (path.StartsWith(prefix, StringComparison.Ordinal) && (best is null || prefix.Length >= best.Value.Point.TrimEnd('/').Length + 1))
            {
                best = (point, fields[2], fields[3].Split(','));
            }
        }

        if (best is not { } mount || !mount.Type.StartsWith("nfs", StringComparison.Ordinal))
        {
            return null;
        }

        string? local = mount.Options.Contains("nolock", StringComparer.Ordinal) ? "nolock"
            : mount.Options.FirstOrDefault(o => o is "local_lock=flock" or "local_lock=all");
        return local is null
            ? null
            : $"{folder} is on an NFS mount ({mount.Point}) with {local}: file locks stay on this node, so replicas on other nodes are not serialized. Mount it without {local}.";
    }

    // The mount table writes space, tab, newline and backslash in paths as octal escapes (\040).
    private static string Unescape(string field)
    {
        var text = new System.Text.StringBuilder(field.Length);
        for (int i = 0; i < field.Length; i++)
        {
            if (field[i] == '\\' && i + 3 < field.Length && field.AsSpan(i + 1, 3).ToArray().All(c => c is >= '0' and <= '7'))
            {
                text.Append((char)Convert.ToInt32(field.Substring(i + 1, 3), 8));
                i += 3;
            }
            else
            {
                text.Append(field[i]);
            }
        }

        return text.ToString();
    }
}
