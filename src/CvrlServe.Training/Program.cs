namespace CvrlServe.Training;

internal static class Program
{
    public static async Task<int> Main(string[] args)
    {
        MallocTuning.Apply();
        return await Cli.RunAsync(args, Console.Out, Console.Error);
    }
}
