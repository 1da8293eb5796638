using CvrlServe.Core.Datasets;

namespace CvrlServe.Core.Tests.Datasets;

public sealed class LabelledVideosTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("cvrl-labels-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private string Touch(string relative)
    {
        string path = Path.Combine(_root, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, [0]);
        return path;
    }

    private string Write(string name, string text)
    {
        string path = Path.Combine(_root, name);
        File.WriteAllText(path, text);
        return path;
    }

    [Fact]
    public void FromFolderPerClass_LabelsAreFirstLevelFolders()
    {
        Touch("videos/jump/a.mp4");
        Touch("videos/jump/more/b.webm");
        Touch("videos/run/c.avi");
        Touch("videos/run/notes.txt");
        var data = LabelledVideos.Load(Path.Combine(_root, "videos"));
        Assert.Equal(["jump", "run"], data.Classes);
        Assert.Equal(["jump", "jump", "run"], data.Videos.Select(v => v.Label));
        Assert.Equal(1, data.ClassIndex("run"));
    }

    [Fact]
    public void FromFolderPerClass_EmptyClassAndStrayVideo_Reported()
    {
        Touch("videos/jump/a.mp4");
        Directory.CreateDirectory(Path.Combine(_root, "videos", "swim"));
        Touch("videos/stray.mp4");
        var error = Assert.Throws<DatasetException>(() => LabelledVideos.FromFolderPerClass(Path.Combine(_root, "videos")));
        Assert.Contains(error.Problems, p => p.Message.Contains("'swim' holds no videos", StringComparison.Ordinal));
        Assert.Contains(error.Problems, p => p.Message.Contains("'stray.mp4' is not inside a class folder", StringComparison.Ordinal));
    }

    [Fact]
    public void FromCsv_HeaderQuotesAndRelativePaths()
    {
        Touch("clips/a, with comma.mp4");
        Touch("clips/b.mp4");
        string csv = Write("labels.csv", "path,label\n\"clips/a, with comma.mp4\",wave\nclips/b.mp4, clap \n\n# comment\n");
        var data = LabelledVideos.Load(csv);
        Assert.Equal(["clap", "wave"], data.Classes);
        Assert.Equal([2, 3], data.Videos.Select(v => v.Line));
        Assert.EndsWith("a, with comma.mp4", data.Videos[0].Path, StringComparison.Ordinal);
    }

    [Fact]
    public void FromCsv_MalformedMissingAndUnknown_EachReportedByLine()
    {
        Touch("clips/a.mp4");
        Touch("clips/b.mp4");
        string classes = Write("classes.txt", "wave\nclap\n");
        string csv = Write("labels.csv", "clips/a.mp4,wave\njust-one-field\nclips/missing.mp4,clap\nclips/b.mp4,dance\n\"open quote,wave\nclips/a.mp4,\n");
        var error = Assert.Throws<DatasetException>(() => LabelledVideos.FromCsv(csv, classesFile: classes));
        Assert.Equal([2, 3, 4, 5, 6], error.Problems.Select(p => p.Line));
        Assert.Contains("expected 'path,label'", error.Problems[0].Message, StringComparison.Ordinal);
        Assert.Contains("missing file", error.Problems[1].Message, StringComparison.Ordinal);
        Assert.Contains("unknown label 'dance'", error.Problems[2].Message, StringComparison.Ordinal);
        Assert.Contains("empty label", error.Problems[4].Message, StringComparison.Ordinal);
        Assert.Contains("labels.csv:4: unknown label 'dance'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void FromSplitList_Ucf101TrainAndTestLists()
    {
        Touch("UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi");
        Touch("UCF-101/Archery/v_Archery_g01_c01.avi");
        Write("classInd.txt", "1 ApplyEyeMakeup\n2 Archery\n3 BabyCrawling\n");
        string train = Write("trainlist01.txt", "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\nArchery/v_Archery_g01_c01.avi 2\n");
        string test = Write("testlist01.txt", "Archery/v_Archery_g01_c01.avi\n");

        var trainSet = LabelledVideos.FromSplitList(train, Path.Combine(_root, "UCF-101"));
        Assert.Equal(["ApplyEyeMakeup", "Archery", "BabyCrawling"], trainSet.Classes);
        Assert.Equal(["ApplyEyeMakeup", "Archery"], trainSet.Videos.Select(v => v.Label));
        Assert.Equal("Archery", LabelledVideos.FromSplitList(test, Path.Combine(_root, "UCF-101")).Videos.Single().Label);
    }

    [Fact]
    public void FromSplitList_BadIndexAndMalformedLine_Reported()
    {
        Touch("UCF-101/Archery/v_Archery_g01_c01.avi");
        Write("classInd.txt", "1 ApplyEyeMakeup\n2 Archery\nthree Bad\n");
        string train = Write("trainlist01.txt", "Archery/v_Archery_g01_c01.avi 2\nArchery/v_Archery_g01_c01.avi 9\nv_no_folder.avi\na b c\n");
        var error = Assert.Throws<DatasetException>(() => LabelledVideos.FromSplitList(train, Path.Combine(_root, "UCF-101")));
        Assert.Contains(error.Problems, p => p.Source.EndsWith("classInd.txt", StringComparison.Ordinal) && p.Line == 3);
        Assert.Contains(error.Problems, p => p.Line == 2 && p.Message.Contains("unknown label '#9'", StringComparison.Ordinal));
        Assert.Contains(error.Problems, p => p.Line == 3 && p.Source.EndsWith("trainlist01.txt", StringComparison.Ordinal));
        Assert.Contains(error.Problems, p => p.Line == 4 && p.Source.EndsWith("trainlist01.txt", StringComparison.Ordinal));
    }

    [Fact]
    public void VideoFiles_Find_RecursiveSortedVideosOnly()
    {
        Touch("raw/b/2.mkv");
        Touch("raw/a/1.MP4");
        Touch("raw/a/readme.md");
        Assert.Equal(["1.MP4", "2.mkv"], VideoFiles.Find(Path.Combine(_root, "raw")).Select(Path.GetFileName));
    }
}
