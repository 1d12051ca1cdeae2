package io.epserve.loadgen; final class Placeholder {}
