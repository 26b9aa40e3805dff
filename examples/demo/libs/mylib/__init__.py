def shout(words):
    return " ".join(w.upper() for w in words) + "!"
