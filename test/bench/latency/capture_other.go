//go:build !linux

package main

import "errors"

func capture(string, uint16, <-chan struct{}, func(), func(int64, []byte)) (captureStats, error) {
	return captureStats{}, errors.New("live capture needs Linux (AF_PACKET); read a pcap file with -r")
}
