"""The song and its tokens: NesScore (notes per voice, in 1/44100-s ticks), the 631-token TX1
vocabulary and the conversions between them. Free of torch."""
