using CvrlServe.Core.Storage;

namespace CvrlServe.Core.Tests.Storage;

public sealed class VolumeLockingTests
{
    private const string Table = """
        proc /proc proc rw,relatime 0 0
        /dev/sda1 / ext4 rw,relatime 0 0
        nas:/export/shared /shared nfs4 rw,relatime,vers=4.2,hard,proto=tcp,local_lock=none,addr=10.0.0.5 0 0
        nas:/export/old /old nfs rw,relatime,vers=3,nolock,proto=tcp,addr=10.0.0.5 0 0
        nas:/export/all /all nfs4 rw,relatime,vers=4.1,local_lock=all,addr=10.0.0.5 0 0
        /dev/sdb1 /old/local ext4 rw,relatime 0 0
        nas:/export/spaced /mnt/my\040data nfs rw,nolock 0 0
        """;

    [Theory]
    [InlineData("/shared/data", null)]
    [InlineData("/old/data", "nolock")]
    [InlineData("/old", "nolock")]
    [InlineData("/all/models", "local_lock=all")]
    [InlineData("/old/local/data", null)] // a local disk mounted inside the NFS mount
    [InlineData("/older/data", null)] // /old is not a prefix of /older
    [InlineData("/mnt/my data/jobs", "nolock")]
    [InlineData("/srv/data", null)]
    public void Warning_NodeLocalNfsLocks_NamedOthersNot(string folder, string? expected)
    {
        string? warning = VolumeLocking.Warning(folder, Table.Replace("\r", "", StringComparison.Ordinal));

        if (expected is null)
        {
            Assert.Null(warning);
        }
        else
        {
            Assert.NotNull(warning);
            Assert.Contains(expected, warning, StringComparison.Ordinal);
            Assert.Contains(folder, warning, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Warning_TheLaterOfTwoMountsOnOnePoint_IsTheOneInEffect()
    {
        const string remounted = "nas:/a /data nfs rw,nolock 0 0\nnas:/a /data nfs4 rw,local_lock=none 0 0\n";

        Assert.Null(VolumeLocking.Warning("/data/x", remounted));
        Assert.NotNull(VolumeLocking.Warning("/data/x", "nas:/a /data nfs4 rw,local_lock=none 0 0\nnas:/a /data nfs rw,nolock 0 0\n"));
    }
}
