// Model families; see VideoSwin.swift.
import TubeletKernels
