namespace CvrlServe.Training.Trainers;

/// <summary>
/// The reference schedule (cvrl-method.md §6): cosine decay from the base rate to 0 over all steps,
/// evaluated at the global step; during the linear warm-up the rate is step/W × cosine(W).
/// </summary>
public sealed record LearningRateSchedule(double BaseRate, int WarmupSteps, int TotalSteps)
{
    public double At(long step)
    {
        double Cosine(double s) => BaseRate * 0.5 * (1 + Math.Cos(Math.PI * Math.Min(s, TotalSteps) / TotalSteps));
        return step < WarmupSteps ? (double)step / WarmupSteps * Cosine(WarmupSteps) : Cosine(step);
    }
}
