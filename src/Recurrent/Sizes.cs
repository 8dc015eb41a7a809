namespace Recurrent;

/// <summary>
/// Size products checked in 64-bit before anything is allocated: a product of int sizes that overflows int would wrap
/// (to 0, or a negative length) and give a silently empty tensor or an <see cref="OverflowException"/> far from the cause.
/// </summary>
internal static class Sizes
{
    /// <summary>
    /// The element count of a buffer whose size is the product of <paramref name="factors"/>, when one array can hold it;
    /// else an <see cref="ArgumentOutOfRangeException"/> naming <paramref name="argumentName"/>, the buffer and every factor.
    /// </summary>
    /// <param name="argumentName">The argument the caller reports (the size that made the product too large).</param>
    /// <param name="buffer">What the product sizes, such as <c>weight_hh_l0 [G·H, H]</c>.</param>
    /// <param name="factors">Each factor with its letter, such as ("G", 4), ("H", 512).</param>
    /// <exception cref="ArgumentOutOfRangeException">The product exceeds <see cref="Array.MaxLength"/>.</exception>
    public static int Elements(string argumentName, string buffer, params ReadOnlySpan<(string Letter, long Value)> factors)
    {
        long count = 1;
        bool overflow = false;
        foreach (var (_, value) in factors)
        {
            // Factors are never negative here (callers check signs first); a product above MaxLength is refused whatever follows.
            if (value != 0 && count > Array.MaxLength / value) overflow = true;
            else count *= value;
        }
        if (!overflow && count <= Array.MaxLength) return (int)count;
        var letters = string.Join("·", factors.ToArray().Select(f => f.Letter));
        var values = string.Join("·", factors.ToArray().Select(f => f.Value));
        throw new ArgumentOutOfRangeException(argumentName,
            $"{argumentName}: {buffer} needs {letters} = {values} elements{(overflow ? "" : $" = {count}")}; one array holds at most {Array.MaxLength}.");
    }
}
