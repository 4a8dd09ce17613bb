"""A user module that crashes its process at import."""
import os
import signal

os.kill(os.getpid(), signal.SIGSEGV)
